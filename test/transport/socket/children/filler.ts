/**
 * Sends on `end` when told to over `control`: for a control message of type k, k messages with
 * sendWait (types counting on from argv[2]), then one more plain send. Replies 1 if that send met
 * BACKPRESSURE, 0 if it went through.
 */
import { isIpcError, parentChannels } from '../../../../src/index.js';

const { end, control } = await parentChannels(['end', 'control']);
let next = Number(process.argv[2]);
for await (const command of control) {
  for (let i = 0; i < command.type; i++) await end.sendWait({ type: next++ });
  let backpressured = false;
  try {
    end.send({ type: next });
    next++;
  } catch (err) {
    if (!isIpcError(err, 'BACKPRESSURE')) throw err;
    backpressured = true;
  }
  await control.sendWait({ type: backpressured ? 1 : 0 });
}
end.close();
control.close();
