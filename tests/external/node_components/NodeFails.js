// A participant in msgflo-nodejs 0.11 style that fails every message: its process callback
// gets an error and no data, so msgflo-nodejs nacks the message and RabbitMQ dead-letters it
// to the exchange dead-<inqueue> (x-dead-letter-exchange of every msgflo-nodejs inqueue).
const msgflo = require('msgflo-nodejs');

module.exports = function (client, role) {
  const definition = {
    component: 'NodeFails',
    icon: 'bomb',
    label: 'Fails whatever it gets',
    inports: [{ id: 'in', type: 'any' }],
    outports: [{ id: 'out', type: 'any' }],
  };
  const process_ = function (inport, indata, callback) {
    return callback('out', new Error('node says no'));
  };
  return new msgflo.participant.Participant(client, definition, process_, role);
};
