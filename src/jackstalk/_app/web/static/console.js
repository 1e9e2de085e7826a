// jackstalk web console: applies the live snapshots (server-sent events from /events) to the
// overview in place and draws each tube's rate chart. Data only ever goes in as textContent
// or attribute values, never as HTML.
"use strict";

(function () {
  const SERVER_CELLS = ["state", "error", "version", "uptime", "current-connections",
    "current-jobs-ready", "current-jobs-reserved", "current-jobs-delayed",
    "current-jobs-buried", "rate-puts", "rate-reserves", "rate-deletes"];
  const TUBE_CELLS = ["current-jobs-ready", "current-jobs-reserved", "current-jobs-delayed",
    "current-jobs-buried", "current-waiting", "pause-time-left", "rate-puts",
    "rate-reserves", "rate-deletes"];
  const SVG = "http://www.w3.org/2000/svg";
  const NO_RESERVES = "beanstalkd counts reserves per server, not per tube";

  let points = 300;
  const history = new Map();

  function show(value) {
    if (value === null || value === undefined) return "n/a";
    if (typeof value === "number" && !Number.isInteger(value)) return value.toFixed(1);
    return String(value);
  }

  function setText(cell, value) {
    const text = show(value);
    if (cell && cell.textContent !== text) cell.textContent = text;
  }

  function rowsBy(table, attribute) {
    const found = new Map();
    for (const row of table.querySelectorAll("tr[" + attribute + "]")) {
      found.set(row.getAttribute(attribute), row);
    }
    return found;
  }

  function draw(row, name) {
    const svg = row.querySelector("td.chart svg");
    const data = history.get(name) || [];
    if (!svg) return;
    let top = 1;
    for (const [puts, deletes] of data) top = Math.max(top, puts, deletes);
    // The chart spans the history there is (up to `points` refreshes), so a console
    // started a minute ago draws its minute across the whole width.
    const step = 120 / Math.max(1, Math.min(points, data.length) - 1);
    const start = data.length > 1 ? 0 : 120;
    for (const [index, cls] of [[0, "puts"], [1, "deletes"]]) {
      const line = svg.querySelector("polyline." + cls);
      const coords = data.map(function (point, i) {
        const x = (start + i * step).toFixed(1);
        const y = (23 - (point[index] / top) * 22).toFixed(1);
        return x + "," + y;
      });
      line.setAttribute("points", coords.join(" "));
    }
    svg.setAttribute("aria-label", "puts and deletes per second, at most " + top.toFixed(1));
  }

  function newTubeRow(name) {
    const row = document.createElement("tr");
    row.className = "tube";
    row.setAttribute("data-tube", name);
    const first = document.createElement("td");
    first.className = "name";
    const link = document.createElement("a");
    link.setAttribute("href", "/tubes/" + encodeURIComponent(name));
    link.textContent = name;
    first.appendChild(link);
    row.appendChild(first);
    for (const key of TUBE_CELLS) {
      const cell = document.createElement("td");
      cell.className = key + " num";
      if (key === "rate-reserves") cell.setAttribute("title", NO_RESERVES);
      row.appendChild(cell);
    }
    const chart = document.createElement("td");
    chart.className = "chart";
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("class", "rates");
    svg.setAttribute("viewBox", "0 0 120 24");
    svg.setAttribute("width", "120");
    svg.setAttribute("height", "24");
    svg.setAttribute("role", "img");
    for (const cls of ["puts", "deletes"]) {
      const line = document.createElementNS(SVG, "polyline");
      line.setAttribute("class", cls);
      line.setAttribute("points", "");
      svg.appendChild(line);
    }
    chart.appendChild(svg);
    row.appendChild(chart);
    return row;
  }

  function apply(snapshot) {
    const servers = document.getElementById("servers");
    if (servers) {
      const rows = rowsBy(servers, "data-server");
      for (const server of snapshot.servers) {
        const row = rows.get(server.name);
        if (!row) continue;
        row.classList.toggle("up", server.state === "up");
        row.classList.toggle("down", server.state !== "up");
        for (const key of SERVER_CELLS) {
          let value = server[key];
          if (key.startsWith("rate-") && server.state !== "up") value = "";
          setText(row.querySelector("td." + key), value);
        }
      }
      const total = servers.querySelector("tr.total");
      if (total) {
        for (const key of SERVER_CELLS) {
          if (key === "uptime" || key === "error") continue;
          setText(total.querySelector("td." + key), snapshot.total[key]);
        }
      }
    }
    const mine = document.getElementById("tube-total");
    if (mine) {
      const name = mine.getAttribute("data-tube");
      const tube = snapshot.tubes.find(function (row) { return row.name === name; });
      for (const key of TUBE_CELLS) setText(mine.querySelector("td." + key), tube ? tube[key] : 0);
    }
    const tubes = document.getElementById("tubes");
    if (tubes) {
      const body = tubes.tBodies[0];
      const rows = rowsBy(tubes, "data-tube");
      const seen = new Set();
      let previous = null;
      for (const tube of snapshot.tubes) {
        seen.add(tube.name);
        let row = rows.get(tube.name);
        if (!row) row = newTubeRow(tube.name);
        // Keep the rows in the snapshot's (sorted) order.
        const wanted = previous ? previous.nextSibling : body.firstChild;
        if (wanted !== row) body.insertBefore(row, wanted);
        previous = row;
        for (const key of TUBE_CELLS) setText(row.querySelector("td." + key), tube[key]);
        const data = history.get(tube.name) || [];
        data.push([tube["rate-puts"] || 0, tube["rate-deletes"] || 0]);
        while (data.length > points) data.shift();
        history.set(tube.name, data);
        draw(row, tube.name);
      }
      for (const [name, row] of rows) {
        if (!seen.has(name)) {
          row.remove();
          history.delete(name);
        }
      }
    }
    const count = Number(document.body.getAttribute("data-updates") || "0") + 1;
    document.body.setAttribute("data-updates", String(count));
  }

  function start() {
    const seed = document.getElementById("history");
    if (seed) {
      const data = JSON.parse(seed.textContent || "{}");
      points = data.points || points;
      for (const [name, list] of Object.entries(data.tubes || {})) history.set(name, list);
      const tubes = document.getElementById("tubes");
      if (tubes) for (const [name, row] of rowsBy(tubes, "data-tube")) draw(row, name);
    }
    const live = document.getElementById("live");
    if (!window.EventSource) {
      if (live) live.textContent = "";
      return;
    }
    const source = new EventSource("/events");
    source.onopen = function () { if (live) live.textContent = "live"; };
    source.onerror = function () { if (live) live.textContent = "reconnecting"; };
    source.onmessage = function (event) {
      let snapshot;
      try {
        snapshot = JSON.parse(event.data);
      } catch (error) {
        return;
      }
      apply(snapshot);
      if (live) live.textContent = "live";
    };
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
