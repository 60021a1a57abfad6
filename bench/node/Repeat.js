// The original's Repeat participant (msgflo-nodejs examples/Repeat.coffee) as plain JavaScript,
// so no CoffeeScript compile happens at run time.  BENCH_IN / BENCH_OUT name the queues;
// BENCH_PREFETCH, when set, builds the AMQP client with that prefetch (the library's default
// is 2 and its command line has no option for it).
const msgflo = require('msgflo-nodejs');

module.exports = function (broker, role) {
  const definition = {
    component: 'Repeat',
    icon: 'file-word-o',
    label: 'Repeats in data without changes',
    inports: [{ id: 'in', type: 'any', queue: process.env.BENCH_IN }],
    outports: [{ id: 'out', type: 'any', queue: process.env.BENCH_OUT }],
  };
  const repeat = function (inport, indata, callback) {
    return callback('out', null, indata);
  };
  let client = broker;
  if (process.env.BENCH_PREFETCH) {
    client = msgflo.transport.getClient(broker, { prefetch: parseInt(process.env.BENCH_PREFETCH, 10) });
  }
  return new msgflo.participant.Participant(client, definition, repeat, role);
};
