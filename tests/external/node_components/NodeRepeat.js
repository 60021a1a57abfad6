// A Repeat participant in msgflo-nodejs 0.11 style: a factory (client, role) -> Participant.
// Queue names default to msgflo-nodejs' role.PORT; NODE_REPEAT_IN / NODE_REPEAT_OUT override
// them, so a test can make this participant share or connect queues with ours.
const msgflo = require('msgflo-nodejs');

module.exports = function (client, role) {
  const definition = {
    component: 'NodeRepeat',
    icon: 'file-word-o',
    label: 'Repeats in data, tagged with the language that handled it',
    inports: [{ id: 'in', type: 'any', queue: process.env.NODE_REPEAT_IN }],
    outports: [{ id: 'out', type: 'any', queue: process.env.NODE_REPEAT_OUT }],
  };
  const process_ = function (inport, indata, callback) {
    if (indata && typeof indata === 'object' && !Array.isArray(indata)) {
      const tagged = Object.assign({}, indata);
      tagged.path = (indata.path || []).concat(['node']);
      return callback('out', null, tagged);
    }
    return callback('out', null, indata);
  };
  return new msgflo.participant.Participant(client, definition, process_, role);
};
