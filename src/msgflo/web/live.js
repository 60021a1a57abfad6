// The msgflo live view: polls /api/network every second and draws the running graph.
// The layout (layered, left to right) is computed only when the graph's shape changes;
// every other update touches text and classes of elements that already exist, so a
// 200-node graph updates without rebuilding anything.
"use strict";

(() => {
  const SVGNS = "http://www.w3.org/2000/svg";
  const POLL_MS = 1000;
  const NODE_W = 190;
  const HEAD_H = 50;
  const PORT_H = 17;
  const LAYER_GAP = 120;
  const ROW_GAP = 26;
  const PAD = 30;
  const SWEEPS = 6;

  const $ = (id) => document.getElementById(id);
  const live = {
    secret: sessionStorage.getItem("msgflo-secret"),
    shape: null,
    view: null,
    selected: null,
    access: null,
    zoom: 1,
    timer: null,
    updates: 0,
    renderMs: [],
    failures: 0,
  };
  // Read by the browser tests (update count, render times) and handy in a console.
  window.msgfloLive = live;

  class NeedSecret extends Error {}

  async function api(path, options = {}) {
    const headers = { Accept: "application/json", ...(options.headers || {}) };
    if (live.secret) headers["X-Msgflo-Secret"] = live.secret;
    const response = await fetch(path, { ...options, headers, cache: "no-store" });
    let body;
    try {
      body = await response.json();
    } catch (_) {
      body = { error: `${response.status} ${response.statusText}` };
    }
    if (response.status === 401 || (response.status === 403 && body.error === "invalid secret")) {
      askSecret(response.status === 403 ? "That secret is not valid here." : "");
      throw new NeedSecret();
    }
    if (!response.ok) throw new Error(body.error || `${response.status} ${response.statusText}`);
    return body;
  }

  // -- the secret ---------------------------------------------------------------------------

  function askSecret(problem) {
    live.secret = null;
    sessionStorage.removeItem("msgflo-secret");
    clearView();
    setStatus("waiting for the secret", true);
    $("secret-error").textContent = problem;
    $("secret-dialog").hidden = false;
    $("secret-input").focus();
  }

  $("secret-form").addEventListener("submit", (event) => {
    event.preventDefault();
    live.secret = $("secret-input").value;
    sessionStorage.setItem("msgflo-secret", live.secret);
    $("secret-input").value = "";
    $("secret-dialog").hidden = true;
    schedule(0);
  });

  // -- polling ------------------------------------------------------------------------------

  function schedule(delay) {
    clearTimeout(live.timer);
    live.timer = setTimeout(poll, delay);
  }

  async function poll() {
    const started = performance.now();
    try {
      const network = await api("/api/network");
      render(network);
      live.failures = 0;
      const when = new Date(network.time * 1000).toLocaleTimeString();
      setStatus(`${network.nodes.length} nodes, ${network.edges.length} edges; updated ${when}`);
      if (live.selected) await showEdge(live.selected);
    } catch (error) {
      if (error instanceof NeedSecret) return; // polling resumes when the secret is given
      live.failures += 1;
      setStatus(`no update: ${error.message}`, true);
    }
    schedule(Math.max(0, POLL_MS - (performance.now() - started)));
  }

  function setStatus(text, bad = false) {
    const status = $("status");
    status.textContent = text;
    status.classList.toggle("error", bad);
  }

  // -- layout -------------------------------------------------------------------------------

  // Layers by longest path over the graph with its cycles broken (depth-first back edges
  // ignored), then orders within layers by barycentre sweeps, then coordinates.
  function layout(network) {
    const nodes = network.nodes;
    const n = nodes.length;
    const index = new Map(nodes.map((node, i) => [node.name, i]));
    const out = nodes.map(() => []);
    const inc = nodes.map(() => []);
    for (const edge of network.edges) {
      const a = index.get(edge.src.node);
      const b = index.get(edge.tgt.node);
      if (a === undefined || b === undefined || a === b) continue;
      out[a].push(b);
      inc[b].push(a);
    }
    const back = new Set();
    const mark = new Uint8Array(n); // 0 new, 1 on the stack, 2 done
    const roots = [...nodes.keys()].sort((a, b) => inc[a].length - inc[b].length);
    for (const root of roots) {
      if (mark[root]) continue;
      const stack = [[root, 0]];
      mark[root] = 1;
      while (stack.length) {
        const top = stack[stack.length - 1];
        const [v, next] = top;
        if (next < out[v].length) {
          top[1] += 1;
          const w = out[v][next];
          if (mark[w] === 1) back.add(v * n + w);
          else if (mark[w] === 0) {
            mark[w] = 1;
            stack.push([w, 0]);
          }
        } else {
          mark[v] = 2;
          stack.pop();
        }
      }
    }
    const forward = (v, w) => !back.has(v * n + w);
    const layer = new Int32Array(n);
    const waiting = inc.map((preds, w) => preds.filter((v) => forward(v, w)).length);
    const ready = [...nodes.keys()].filter((v) => waiting[v] === 0);
    while (ready.length) {
      const v = ready.pop();
      for (const w of out[v]) {
        if (!forward(v, w)) continue;
        layer[w] = Math.max(layer[w], layer[v] + 1);
        if (--waiting[w] === 0) ready.push(w);
      }
    }
    const layers = [];
    for (let v = 0; v < n; v++) (layers[layer[v]] ||= []).push(v);
    const position = new Float64Array(n);
    const place = () => layers.forEach((row) => row.forEach((v, i) => (position[v] = (i + 0.5) / row.length)));
    place();
    const sweep = (row, neighbours) => {
      const weight = new Map(row.map((v) => {
        const near = neighbours[v];
        const mean = near.length ? near.reduce((sum, w) => sum + position[w], 0) / near.length : position[v];
        return [v, mean];
      }));
      row.sort((a, b) => weight.get(a) - weight.get(b));
      row.forEach((v, i) => (position[v] = (i + 0.5) / row.length));
    };
    for (let i = 0; i < SWEEPS; i++) {
      for (let l = 1; l < layers.length; l++) sweep(layers[l], inc);
      for (let l = layers.length - 2; l >= 0; l--) sweep(layers[l], out);
    }
    const height = (node) => HEAD_H + Math.max(node.inports.length, node.outports.length, 1) * PORT_H + 8;
    const columns = layers.map((row) => row.reduce((sum, v) => sum + height(nodes[v]) + ROW_GAP, -ROW_GAP));
    const tallest = Math.max(0, ...columns);
    const boxes = new Map();
    layers.forEach((row, l) => {
      let y = PAD + (tallest - columns[l]) / 2;
      for (const v of row) {
        const h = height(nodes[v]);
        boxes.set(nodes[v].name, { x: PAD + l * (NODE_W + LAYER_GAP), y, h });
        y += h + ROW_GAP;
      }
    });
    return {
      boxes,
      width: 2 * PAD + layers.length * NODE_W + Math.max(0, layers.length - 1) * LAYER_GAP,
      height: 2 * PAD + tallest,
    };
  }

  function shapeOf(network) {
    const nodes = network.nodes.map((n) => [n.name, n.component, n.inports.map((p) => p.id), n.outports.map((p) => p.id)]);
    return JSON.stringify([nodes, network.edges.map((e) => e.id)]);
  }

  // -- drawing ------------------------------------------------------------------------------

  function el(name, attributes = {}, parent = null, text = null) {
    const element = document.createElementNS(SVGNS, name);
    for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, value);
    if (text !== null) element.textContent = text;
    if (parent) parent.appendChild(element);
    return element;
  }

  function portY(box, i) {
    return box.y + HEAD_H + i * PORT_H + PORT_H / 2;
  }

  function build(network) {
    const svg = $("graph");
    const { boxes, width, height } = layout(network);
    svg.replaceChildren();
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    const view = { width, height, nodes: new Map(), edges: new Map() };
    const edgeLayer = el("g", { class: "edges" }, svg);
    const nodeLayer = el("g", { class: "nodes" }, svg);
    const portIndex = new Map();
    for (const node of network.nodes) {
      const box = boxes.get(node.name);
      const g = el("g", { class: "node", "data-node": node.name, transform: `translate(${box.x},${box.y})` }, nodeLayer);
      const title = el("title", {}, g, node.name);
      el("rect", { class: "box", width: NODE_W, height: box.h }, g);
      el("text", { class: "name", x: 10, y: 17 }, g, clip(node.name, 24));
      el("text", { class: "component", x: 10, y: 31 }, g, clip(node.component, 30));
      const stats = el("text", { class: "stats", x: 10, y: 45 }, g, "");
      node.inports.forEach((port, i) => {
        portIndex.set(`${node.name}\u0000in\u0000${port.id}`, portY(box, i));
        const y = portY(box, i) - box.y;
        el("circle", { class: "port in", cx: 0, cy: y, r: 4.5, "data-port": `${node.name}.${port.id}` }, g);
        el("text", { class: "port-label", x: 8, y: y + 3.5 }, g, clip(port.id, 14));
      });
      node.outports.forEach((port, i) => {
        portIndex.set(`${node.name}\u0000out\u0000${port.id}`, portY(box, i));
        const y = portY(box, i) - box.y;
        el("circle", { class: "port out", cx: NODE_W, cy: y, r: 4.5 }, g);
        el("text", { class: "port-label", x: NODE_W - 8, y: y + 3.5, "text-anchor": "end" }, g, clip(port.id, 14));
      });
      view.nodes.set(node.name, { g, stats, title, last: "" });
    }
    for (const edge of network.edges) {
      const a = boxes.get(edge.src.node);
      const b = boxes.get(edge.tgt.node);
      if (!a || !b) continue;
      const x1 = a.x + NODE_W;
      const y1 = portIndex.get(`${edge.src.node}\u0000out\u0000${edge.src.port}`) ?? a.y + HEAD_H / 2;
      const x2 = b.x;
      const y2 = portIndex.get(`${edge.tgt.node}\u0000in\u0000${edge.tgt.port}`) ?? b.y + HEAD_H / 2;
      const dx = Math.max(50, Math.abs(x2 - x1) / 2);
      const d = `M${x1},${y1} C${x1 + dx},${y1} ${x2 - dx},${y2} ${x2},${y2}`;
      const g = el("g", { class: "edge", "data-edge": edge.id }, edgeLayer);
      const title = el("title", {}, g, edge.id);
      el("path", { class: "edge-hit", d }, g);
      el("path", { class: "edge-line", d }, g);
      // the curve's midpoint (t = 1/2 of the cubic)
      const mx = (x1 + 3 * (x1 + dx) + 3 * (x2 - dx) + x2) / 8;
      const my = (y1 + y2) / 2;
      const label = el("text", { class: "edge-label", x: mx, y: my - 5, "text-anchor": "middle" }, g, "");
      g.addEventListener("click", () => selectEdge(edge.id));
      view.edges.set(edge.id, { g, label, title, last: "" });
    }
    nodeLayer.addEventListener("click", (event) => {
      const port = event.target.closest?.(".port.in.sendable");
      if (port) chooseTarget(port.getAttribute("data-port"));
    });
    live.view = view;
    applyZoom();
    fillTargets(network);
  }

  function clip(text, length) {
    return text.length > length ? `${text.slice(0, length - 1)}\u2026` : text;
  }

  function rateText(rate) {
    if (rate === null || rate === undefined) return "? msg/s";
    return `${rate >= 100 ? rate.toFixed(0) : rate >= 10 ? rate.toFixed(1) : rate.toFixed(2)} msg/s`;
  }

  function update(network) {
    const view = live.view;
    for (const node of network.nodes) {
      const entry = view.nodes.get(node.name);
      if (!entry) continue;
      let text = `\u00d7${node.instances} \u21bb${node.restarts} \u26a0${node.errors} \u2620${node.dead_letters}`;
      if (node.processing_ms) text += ` p95 ${node.processing_ms.p95.toFixed(0)} ms`;
      const failing = node.errors > 0 || node.dead_letters > 0;
      const classes = `node${node.stale ? " stale" : ""}${node.instances === 0 && !node.stale ? " pending" : ""}${failing ? " failing" : ""}`;
      const seen = node.last_seen ? `last seen ${new Date(node.last_seen * 1000).toLocaleTimeString()}` : "never seen";
      const key = `${text}|${classes}|${seen}`;
      if (key === entry.last) continue;
      entry.last = key;
      entry.stats.textContent = text;
      entry.g.setAttribute("class", classes);
      entry.g.dataset.instances = node.instances;
      entry.g.dataset.restarts = node.restarts;
      entry.g.dataset.errors = node.errors;
      entry.g.dataset.deadLetters = node.dead_letters;
      entry.title.textContent = `${node.name} (${node.component})\n${node.instances} instances, ${node.restarts} restarts, ${node.errors} errors, ${node.nacks} nacks, ${node.dead_letters} dead letters\n${node.stale ? "STALE: stopped reporting; " : ""}${seen}`;
      const inports = entry.g.querySelectorAll(".port.in");
      inports.forEach((port) => port.classList.toggle("sendable", live.access === "full"));
    }
    for (const edge of network.edges) {
      const entry = view.edges.get(edge.id);
      if (!entry) continue;
      const depth = edge.depth === null || edge.depth === undefined ? "?" : edge.depth;
      let text = edge.state === "wired" ? `${rateText(edge.rate)} \u00b7 ${depth} queued` : edge.state;
      if (edge.stalled) text = `STALLED \u00b7 ${text}`;
      else if (edge.abnormal) text = `ABNORMAL \u00b7 ${text}`;
      const classes = `edge ${edge.state}${edge.stalled ? " stalled" : ""}${edge.abnormal ? " abnormal" : ""}${edge.id === live.selected ? " selected" : ""}`;
      const key = `${text}|${classes}|${edge.error}`;
      if (key === entry.last) continue;
      entry.last = key;
      entry.label.textContent = text;
      entry.g.setAttribute("class", classes);
      entry.g.dataset.state = edge.state;
      entry.g.dataset.rate = edge.rate ?? "";
      entry.g.dataset.depth = edge.depth ?? "";
      entry.g.dataset.stalled = edge.stalled;
      entry.g.dataset.abnormal = edge.abnormal;
      entry.title.textContent = `${edge.id}: ${edge.state}${edge.error ? ` (${edge.error})` : ""}`;
    }
  }

  function render(network) {
    const started = performance.now();
    live.access = network.access;
    $("graph-name").textContent = network.graph ?? "(none)";
    $("broker").textContent = network.broker;
    $("send-panel").hidden = network.access !== "full";
    const shape = shapeOf(network);
    if (shape !== live.shape) {
      build(network);
      live.shape = shape;
    }
    update(network);
    live.updates += 1;
    // the time until the browser has laid out and painted the change, not only the script's
    requestAnimationFrame(() => setTimeout(() => {
      live.renderMs.push(performance.now() - started);
      if (live.renderMs.length > 50) live.renderMs.shift();
    }, 0));
  }

  function clearView() {
    $("graph").replaceChildren();
    live.shape = null;
    live.view = null;
    live.selected = null;
    $("edge-panel").hidden = true;
    $("send-panel").hidden = true;
    $("send-target").replaceChildren();
    $("packets").replaceChildren();
    $("graph-name").textContent = "\u2013";
    $("broker").textContent = "\u2013";
  }

  // -- zoom ---------------------------------------------------------------------------------

  function applyZoom() {
    const view = live.view;
    if (!view) return;
    const svg = $("graph");
    svg.setAttribute("width", Math.round(view.width * live.zoom));
    svg.setAttribute("height", Math.round(view.height * live.zoom));
  }

  $("zoom-in").addEventListener("click", () => { live.zoom = Math.min(4, live.zoom * 1.25); applyZoom(); });
  $("zoom-out").addEventListener("click", () => { live.zoom = Math.max(0.1, live.zoom / 1.25); applyZoom(); });
  $("zoom-fit").addEventListener("click", () => {
    if (!live.view) return;
    const canvas = $("canvas");
    live.zoom = Math.min(canvas.clientWidth / live.view.width, canvas.clientHeight / live.view.height, 4);
    applyZoom();
  });

  // -- an edge's packets --------------------------------------------------------------------

  function selectEdge(id) {
    live.selected = id;
    for (const [key, entry] of live.view.edges) {
      entry.g.classList.toggle("selected", key === id);
      entry.last = "";
    }
    $("edge-id").textContent = id;
    $("edge-summary").textContent = "watching\u2026";
    $("packets").replaceChildren();
    $("edge-panel").hidden = false;
    showEdge(id).catch(() => {});
  }

  async function showEdge(id) {
    const summary = $("edge-summary");
    let body;
    try {
      body = await api(`/api/edge?id=${encodeURIComponent(id)}`);
    } catch (error) {
      if (error instanceof NeedSecret) throw error;
      summary.textContent = error.message;
      summary.classList.add("error");
      return;
    }
    if (live.selected !== id) return;
    summary.classList.remove("error");
    summary.textContent = `${body.packets.length} newest packets \u00b7 ${rateText(body.rate)} while watched`;
    const items = body.packets.slice().reverse().map((packet) => {
      const li = document.createElement("li");
      const time = document.createElement("time");
      time.textContent = new Date(packet.time * 1000).toLocaleTimeString();
      const code = document.createElement("code");
      code.textContent = clip(JSON.stringify(packet.data) ?? String(packet.data), 600);
      li.append(time, code);
      return li;
    });
    $("packets").replaceChildren(...items);
  }

  // -- sending ------------------------------------------------------------------------------

  function fillTargets(network) {
    const select = $("send-target");
    const current = select.value;
    const options = [];
    for (const node of network.nodes) {
      for (const port of node.inports) {
        const option = document.createElement("option");
        option.value = option.textContent = `${node.name}.${port.id}`;
        options.push(option);
      }
    }
    select.replaceChildren(...options);
    if (current) select.value = current;
  }

  function chooseTarget(target) {
    $("send-target").value = target;
    $("send-data").focus();
  }

  $("send-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const result = $("send-result");
    const target = $("send-target").value;
    const dot = target.lastIndexOf(".");
    if (dot < 0) return;
    const raw = $("send-data").value;
    let data;
    try {
      data = JSON.parse(raw);
    } catch (_) {
      data = raw;
    }
    try {
      const body = await api("/api/send", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ node: target.slice(0, dot), port: target.slice(dot + 1), data }),
      });
      result.textContent = `sent to ${body.sent} at ${new Date().toLocaleTimeString()}`;
      result.classList.remove("error");
    } catch (error) {
      if (error instanceof NeedSecret) return;
      result.textContent = `not sent: ${error.message}`;
      result.classList.add("error");
    }
  });

  schedule(0);
})();
