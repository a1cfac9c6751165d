// bci live monitor: reads the session's Server-Sent Events, draws them (uPlot). Read-only,
// except for the manual stop button (POST /stop with the access token).
"use strict";
(function () {
  const token = document.querySelector('meta[name="bci-token"]').content;
  const q = "?token=" + encodeURIComponent(token);
  const $ = (id) => document.getElementById(id);
  const COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
                  "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
  let signalPlot = null, probaPlot = null, nUpdates = 0, ended = false;

  function fmt(v, digits) {
    if (v === null || v === undefined) return "-";
    if (typeof v === "number") return v.toFixed(digits === undefined ? 3 : digits);
    return String(v);
  }
  function cell(row, text, cls) {
    const td = document.createElement(row.parentElement && row.parentElement.tagName === "THEAD" ? "th" : "td");
    td.textContent = text;
    if (cls) td.className = cls;
    row.appendChild(td);
  }
  function table(id, header, rows, textCols) {
    const t = $(id);
    t.replaceChildren();
    const head = t.createTHead().insertRow();
    header.forEach((h, i) => {
      const th = document.createElement("th");
      th.textContent = h;
      if (textCols && textCols.includes(i)) th.className = "text";
      head.appendChild(th);
    });
    const body = t.createTBody();
    rows.forEach((r) => {
      const tr = body.insertRow();
      r.forEach((v, i) => cell(tr, v, textCols && textCols.includes(i) ? "text" : ""));
    });
  }
  function width(id) { return Math.max($(id).clientWidth - 10, 300); }

  // displayed history: the first message holds all of it, the next ones the newer samples
  let sigT = [], sigY = [];
  function addSamples(sig, historyS) {
    if (sig.reset) {
      sigT = sig.t.slice();
      sigY = sig.y.map((row) => row.slice());
    } else {
      sigT.push(...sig.t);
      sig.y.forEach((row, k) => { (sigY[k] = sigY[k] || []).push(...row); });
    }
    if (!sigT.length) return;
    const tLast = sigT[sigT.length - 1];
    let drop = 0;
    while (drop < sigT.length && sigT[drop] < tLast - historyS) drop += 1;
    if (drop) {
      sigT.splice(0, drop);
      sigY.forEach((row) => row.splice(0, drop));
    }
  }

  function drawSignals(msg) {
    const names = msg.info.ch_names || [];
    if (msg.signal) addSamples(msg.signal, msg.info.history_s || 5);
    if (!sigT.length) return;
    const sig = { t: sigT.map((t) => t - sigT[sigT.length - 1]), y: sigY };
    // stacked display: each channel scaled by its range and offset
    const series = sig.y.map((row, k) => {
      let lo = Infinity, hi = -Infinity;
      for (const v of row) if (v !== null) { if (v < lo) lo = v; if (v > hi) hi = v; }
      const mid = (lo + hi) / 2, span = (hi - lo) || 1;
      return row.map((v) => (v === null ? null : (v - mid) / span - k));
    });
    const data = [sig.t, ...series];
    if (signalPlot === null || signalPlot.series.length !== data.length) {
      if (signalPlot !== null) signalPlot.destroy();
      signalPlot = new uPlot({
        width: width("signals"), height: 60 + 40 * series.length,
        scales: { x: { time: false }, y: { range: [-series.length + 0.4, 0.6] } },
        axes: [{ label: "time (s, 0 = newest sample)" },
               { values: (u, ticks) => ticks.map(() => "") }],
        legend: { show: true },
        series: [{ label: "t (s)" }, ...series.map((_, k) => ({
          label: names[k] || ("ch" + (k + 1)), stroke: COLORS[k % COLORS.length], width: 1,
          value: (u, v) => "" }))],
      }, data, $("signals"));
    } else {
      signalPlot.setData(data);
    }
    $("signal-note").textContent = `(${names.length} of ${msg.info.n_chans} channels, ` +
      `${fmt(msg.info.display_hz, 0)} Hz shown of ${fmt(msg.info.sfreq, 0)} Hz, each scaled to its range)`;
  }

  function drawProba(msg) {
    const decisions = msg.recent_decision || [];
    const classes = msg.info.classes;
    let labels, rows;
    if (classes && decisions.some((d) => d.proba)) {
      labels = classes;
      rows = classes.map((_, k) => decisions.map((d) => (d.proba ? d.proba[k] : null)));
    } else {
      labels = ["policy score"];
      rows = [decisions.map((d) => d.score)];
    }
    if (!decisions.length) return;
    const data = [decisions.map((d) => d.t), ...rows];
    if (probaPlot === null || probaPlot.series.length !== data.length) {
      if (probaPlot !== null) probaPlot.destroy();
      probaPlot = new uPlot({
        width: width("proba"), height: 220,
        scales: { x: { time: false } },
        axes: [{ label: "source time (s)" }, {}],
        series: [{ label: "t (s)" }, ...labels.map((c, k) => ({
          label: c, stroke: COLORS[k % COLORS.length], width: 1.5 }))],
      }, data, $("proba"));
    } else {
      probaPlot.setData(data);
    }
  }

  function update(msg) {
    nUpdates += 1;
    $("n-updates").textContent = nUpdates;
    $("stream").textContent = msg.info.stream ? `- ${msg.info.stream}` : "";
    const c = msg.counts || {};
    $("n-samples").textContent = c.samples || 0;
    $("n-lost").textContent = c.lost || 0;
    $("n-decisions").textContent = c.decisions || 0;
    $("n-skipped").textContent = c.skipped || 0;
    $("n-stimuli").textContent = c.stimuli || 0;
    $("n-suppressed").textContent = c.suppressed || 0;
    $("n-faults").textContent = msg.n_faults || 0;
    const last = (msg.recent_decision || []).slice(-1)[0];
    $("last-label").textContent = last ? `${last.label || "window"} @ ${fmt(last.t, 2)} s` : "-";
    const st = $("status");
    if (msg.state === "ended") {
      st.textContent = "session ended: " + (msg.stopped_reason || "");
      st.className = "status ended";
      ended = true;
    } else {
      st.textContent = msg.state === "running" ? "running" : "waiting for the session";
      st.className = "status " + msg.state;
    }
    if (c.stopped) {
      $("stop").disabled = true;
      $("stop").textContent = "stimulation stopped: " + (c.stop_reason || "");
    }
    drawSignals(msg);
    drawProba(msg);
    const bp = msg.band_power;
    if (bp) {
      table("bands", ["channel", ...bp.bands],
        bp.db.map((row, k) => [msg.info.ch_names[k], ...row.map((v) => fmt(v, 1))]), [0]);
    }
    const stages = Object.keys(msg.latency_ms || {});
    table("latency", ["stage", "p50", "p95", "p99", "max", "n"], stages.map((s) => {
      const l = msg.latency_ms[s];
      return [s, fmt(l.p50, 2), fmt(l.p95, 2), fmt(l.p99, 2), fmt(l.max, 2), l.n];
    }), [0]);
    table("stimuli", ["t (s)", "code", "reason", "latency (ms)"],
      (msg.recent_stim || []).slice(-12).reverse().map((s) =>
        [fmt(s.t, 3), s.code, s.reason || "", fmt(s.latency_ms, 2)]), [2]);
    table("suppressed", ["t (s)", "why", "request"],
      (msg.recent_suppressed || []).slice(-12).reverse().map((s) =>
        [fmt(s.t, 3), s.why || "", s.request || ""]), [1, 2]);
    table("faults", ["t (s)", "kind", "message"],
      (msg.recent_fault || []).slice(-12).reverse().map((f) =>
        [fmt(f.t, 3), f.kind, f.message]), [1, 2]);
  }

  const source = new EventSource("events" + q);
  source.onmessage = (ev) => update(JSON.parse(ev.data));
  source.onerror = () => {
    if (ended) { source.close(); return; }
    const st = $("status");
    st.textContent = "connection lost (the session may have ended); retrying...";
    st.className = "status lost";
  };
  $("stop").addEventListener("click", () => {
    if (!window.confirm("Stop all stimulation for the rest of this session?")) return;
    fetch("stop" + q, { method: "POST" }).then((r) => r.json()).then((r) => {
      $("stop").disabled = r.stopped;
    });
  });
}());
