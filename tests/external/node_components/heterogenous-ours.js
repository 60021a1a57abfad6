// Runs the original cross-language spec, msgflo 0.12.3 spec/heterogenous.coffee, against one
// participant of ours.  The spec ships an empty table of foreign participants (so upstream it
// tests nothing); its exported testParticipant() is the test, fed here with our command.
//
//   HETEROGENOUS_BROKER=<url> HETEROGENOUS_COMPONENT=<component> \
//   HETEROGENOUS_COMMAND='["msgflo-python", "file.py", "role"]' \
//   mocha --require coffeescript/register heterogenous-ours.js
const msgflo = require('msgflo');
const heterogenous = require('msgflo/spec/heterogenous.coffee');

const address = process.env.HETEROGENOUS_BROKER;
const component = process.env.HETEROGENOUS_COMPONENT;
const state = {
  broker: null,
  commands: { [component]: JSON.parse(process.env.HETEROGENOUS_COMMAND) },
  repeat: undefined, // the spec's default: { bar: 'foo' }
};

describe(`Heterogenous on ${address.split(':')[0]}`, function () {
  beforeEach(function (done) {
    state.broker = msgflo.transport.getBroker(address);
    state.broker.connect(done);
  });
  afterEach(function (done) {
    state.broker.disconnect(done);
  });
  heterogenous.testParticipant(state, component, { broker: address, timeout: 20000 });
});
