/**
 * Reads `end` only when told to over `control`: for a control message of type k, takes k
 * messages and replies with the type of the last one. Reads nothing otherwise.
 */
import { parentChannels } from '../../../../src/index.js';

const { end, control } = await parentChannels(['end', 'control']);
for await (const command of control) {
  let last = -1;
  for (let i = 0; i < command.type; i++) last = (await end.recv()).type;
  await control.sendWait({ type: last });
}
end.close();
control.close();
