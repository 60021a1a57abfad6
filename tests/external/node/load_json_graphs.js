// Loads each JSON graph file named on stdin (a JSON array of paths) with fbp-graph's own
// loader and prints, per file, the graph it built in a normalised form, or its error.
// The form leaves out what only says how a graph was written: key order of maps, and
// a missing component, index or name versus null.
const fs = require("fs");
const { graph: fbpGraph } = require("fbp-graph");

function orNull(value) {
  return value === undefined ? null : value;
}

function normalise(g) {
  const properties = { ...g.properties };
  if (g.name) properties.name = g.name;
  const ports = (exported) =>
    Object.fromEntries(
      Object.entries(exported).map(([pub, p]) => [pub, [p.process, p.port, p.metadata || {}]]),
    );
  return {
    caseSensitive: g.caseSensitive,
    properties,
    processes: Object.fromEntries(
      g.nodes.map((n) => [n.id, { component: orNull(n.component), metadata: n.metadata }]),
    ),
    edges: g.edges.map((e) => [
      e.from.node, e.from.port, orNull(e.from.index),
      e.to.node, e.to.port, orNull(e.to.index), e.metadata || {},
    ]),
    iips: g.initializers.map((i) => [
      i.from.data, i.to.node, i.to.port, orNull(i.to.index), i.metadata || {},
    ]),
    inports: ports(g.inports),
    outports: ports(g.outports),
    groups: g.groups.map((grp) => [grp.name, grp.nodes || [], grp.metadata || {}]),
  };
}

function load(path) {
  return new Promise((resolve) => {
    try {
      fbpGraph.loadJSON(fs.readFileSync(path, "utf-8"), (err, g) => {
        resolve(err ? { ok: false, error: String(err.message) } : { ok: true, graph: normalise(g) });
      });
    } catch (e) {
      resolve({ ok: false, error: String(e.message) });
    }
  });
}

(async () => {
  const paths = JSON.parse(fs.readFileSync(0, "utf-8"));
  const results = [];
  for (const path of paths) results.push(await load(path));
  process.stdout.write(JSON.stringify(results));
})();
