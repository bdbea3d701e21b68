/** Never takes its channels: a child stuck before parentChannels(), for spawnProcess's timeout. */
process.stderr.write('idle child is up\n');
setInterval(() => {}, 1000);
