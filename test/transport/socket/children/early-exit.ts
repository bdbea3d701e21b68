/** Dies before parentChannels(), as a child whose startup code fails does; `signal`: by SIGTERM. */
process.stderr.write('early-exit: cannot read my config\n');
if (process.argv[2] === 'signal') {
  process.kill(process.pid, 'SIGTERM');
  setInterval(() => {}, 1000);
} else process.exit(3);
