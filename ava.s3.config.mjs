// `npm run test:s3`: the evidence store against a real S3 given by the standard AWS_* variables.
// Kept apart from `npm test`, which must pass on a machine without one.
export default {
  extensions: { ts: 'module' },
  nodeArguments: ['--import=tsx'],
  files: ['test/s3/**/*.s3.ts'],
  timeout: '120s',
  workerThreads: false,
};
