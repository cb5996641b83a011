// Scheduled runs that were missed, late or failed: the scheduler records them, and the next
// report lists them as exceptions (a missed review is itself an audit finding).

export interface RunExceptionRecord {
  job: string;
  runId: string;
  expectedAt: string;
  status: 'late' | 'failed' | 'missed';
  detail: string;
}

/** What the report reads about its own schedule (implemented by the server's job store). */
export interface RunHistorySource {
  exceptionsBetween(job: string, fromIso: string, toIso: string): Promise<RunExceptionRecord[]>;
}

/** Run metadata shown on the cover; not part of the data hash (a re-run has a new run id). */
export interface RunInfo {
  runId?: string;
  schedule?: string;
  timezone?: string;
  expectedAt?: string;
  generatedAt: string;
  trigger: 'schedule' | 'cli' | 'api' | 'catch-up';
}
