// Preloaded (node --import) into upstream servers a test starts: they exit once the test process
// that started them is gone, so a worker killed on a timeout leaves no server behind.
const parent = process.ppid;
globalThis.setInterval(() => {
  if (process.ppid !== parent) process.exit(0);
}, 500).unref();
