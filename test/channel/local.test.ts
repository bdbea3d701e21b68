import { Channel } from '../../src/index.js';
import { channelConformance } from './conformance.js';

channelConformance('one thread', async (options) => Channel.pair(options));
