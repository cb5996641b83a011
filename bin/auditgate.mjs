#!/usr/bin/env node
// The CLI is written in TypeScript; tsx lets `npx auditgate` run it without a build step.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../server/cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
