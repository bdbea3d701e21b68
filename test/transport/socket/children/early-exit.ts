/** Dies before parentChannels(), as a child whose startup code fails does. */
process.stderr.write('early-exit: cannot read my config\n');
process.exit(3);
