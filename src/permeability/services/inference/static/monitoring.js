// The monitoring view: the champion's latest evaluation (GET /monitoring), as one page of
// figures. Every figure carries its window (first–last date, "since") and its sample size
// (results, tests), in one element (windowLine), so a number is never read without what it
// was computed on. Plain DOM (textContent, createElement): no HTML is ever built from data.
// Loaded after control_chart.js (which draws the charts) and before app.js, which creates the
// view with the page's helpers and shows it on its tab.
"use strict";

window.PermeabilityMonitoring = (page) => {
  const { t, fmt, percent, api, svg, niceTicks, byId, mlflowRunUrl, versionInfo } = page;
  // Polling while the view is open costs one stat on the server (it caches the file).
  const REFRESH_MS = 60_000;
  const SEVERITY_ORDER = { critical: 0, warning: 1, info: 2 };
  // The error metrics in the order a lab manager reads them; "relative": lower is better and
  // the change is a ratio; "absolute": higher is better and the change is a difference.
  const ERROR_METRICS = [
    ["mae", "mon.metric.mae", (v) => `${fmt(v)} ${t("unit.wvtr")}`, "relative"],
    ["mape", "mon.metric.mape", (v) => `${fmt(v)} %`, "relative"],
    ["median_ape", "mon.metric.median_ape", (v) => `${fmt(v)} %`, "relative"],
    ["r2", "mon.metric.r2", (v) => fmt(v), "absolute"],
  ];
  const DECISIONS = ["approve", "retest", "reject"];

  // The chart draws with the same words, numbers and dates as the rest of the view.
  const chart = window.PermeabilityControlChart({ t, fmt, svg, niceTicks, day, num });

  let snapshot = null;
  let problem = null; // { status, detail } when there is no snapshot to show
  let timer = null;

  // -- small DOM and number helpers ---------------------------------------------------------

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  // JSON has no infinity or NaN: the service sends null (or their names); both read as none.
  function num(value) {
    if (value === null || value === undefined || value === "") return null;
    const number = Number(value);
    return Number.isNaN(number) ? null : number;
  }

  function lang() {
    return document.documentElement.lang || "en";
  }

  // Dates of lab results ("2024-03-27" or "2024-03-27T00:00:00") are days, not instants: read
  // the calendar date so no time zone moves it to the day before.
  function day(text) {
    const match = /^(\d{4})-(\d{2})-(\d{2})/.exec(String(text ?? ""));
    if (!match) return text ? String(text) : "–";
    const date = new Date(Number(match[1]), Number(match[2]) - 1, Number(match[3]));
    return new Intl.DateTimeFormat(lang(), { dateStyle: "medium" }).format(date);
  }

  function moment(text) {
    const date = new Date(text);
    if (!text || Number.isNaN(date.getTime())) return "–";
    return date.toLocaleString(lang(), { dateStyle: "medium", timeStyle: "short" });
  }

  function count(n) {
    return fmt(n, 9);
  }

  // -- the window and sample size of a figure -----------------------------------------------

  // One visible line: "<label> 8 Jan 2024 – 27 Mar 2024 · since 1 Jan 2024 · 142 results ·
  // 48 tests". data-* attributes carry the raw values for tests and scripts.
  function windowLine(label, span) {
    const line = el("p", "window");
    if (label) line.append(el("span", "window-label", label), " ");
    const parts = [];
    if (span.first && span.last) {
      parts.push(el("span", "window-dates", t("mon.window.range", { first: day(span.first), last: day(span.last) })));
    } else if (span.text) {
      parts.push(el("span", "window-dates", span.text));
    } else {
      parts.push(el("span", "window-dates", t("mon.window.no_dates")));
    }
    if (span.since) parts.push(el("span", "window-since", t("mon.window.since", { since: day(span.since) })));
    const size = [];
    if (span.rows != null) size.push(t("mon.window.rows", { rows: count(span.rows) }));
    if (span.tests != null) size.push(t("mon.window.tests", { tests: count(span.tests) }));
    if (span.extra) size.push(span.extra);
    if (size.length) parts.push(el("span", "window-size", size.join(" · ")));
    parts.forEach((part, i) => {
      if (i) line.append(" · ");
      line.append(part);
    });
    for (const key of ["first", "last", "since", "rows", "tests"]) {
      if (span[key] != null) line.dataset[key] = String(span[key]);
    }
    return line;
  }

  // The evaluation's own window for the champion's recent results; a metrics block's own dates
  // and row count when the snapshot has none.
  function recentWindow() {
    const w = snapshot.window;
    if (w) return w;
    const recent = snapshot.recent;
    return recent ? { first: recent.first, last: recent.last, rows: recent.n, tests: recent.tests } : {};
  }

  function servedWindow() {
    const served = snapshot.served;
    return served ? { first: served.first, last: served.last, rows: served.n, tests: served.tests } : {};
  }

  function trainedWindow() {
    const info = versionInfo(snapshot.champion);
    const extra = info?.n_train != null ? t("mon.window.n_train", { n: count(info.n_train) }) : null;
    const created = info?.created_at ? t("mon.window.trained_on", { date: day(info.created_at) }) : t("mon.window.held_out");
    return { text: created, extra };
  }

  function eventsOf(kind) {
    return (snapshot.events || []).filter((e) => e.kind === kind);
  }

  // -- loading ------------------------------------------------------------------------------

  async function load() {
    const view = byId("view-monitoring");
    if (!snapshot && !problem) view.dataset.state = "loading";
    try {
      const answer = await api("monitoring");
      if (answer.ok) {
        snapshot = answer.body;
        problem = null;
      } else {
        snapshot = null;
        problem = { status: answer.status, detail: typeof answer.body?.detail === "string" ? answer.body.detail : "" };
      }
    } catch (error) {
      snapshot = null;
      problem = { status: 0, detail: error.message };
    }
    render();
  }

  function setVisible(visible) {
    if (timer) clearInterval(timer);
    timer = visible ? setInterval(load, REFRESH_MS) : null;
  }

  // -- the view -----------------------------------------------------------------------------

  function render() {
    const view = byId("view-monitoring");
    renderFlag();
    const empty = byId("mon-empty");
    const body = byId("mon-body");
    byId("mon-summary").hidden = !snapshot;
    if (!snapshot) {
      body.hidden = true;
      if (!problem) return;
      empty.hidden = false;
      view.dataset.state = problem.status === 404 ? "empty" : "error";
      const sentence = problem.status === 404 ? t("mon.empty") : t("error.network", { status: problem.status || problem.detail });
      empty.replaceChildren(el("span", null, sentence));
      if (problem.detail) empty.append(el("span", "small muted detail", t("mon.service_says", { detail: problem.detail })));
      return;
    }
    empty.hidden = true;
    body.hidden = false;
    view.dataset.state = "loaded";
    renderHeader();
    renderErrors();
    renderCoverage();
    renderDecisions();
    renderDrift();
    renderChart();
    renderEvents();
  }

  // The tab says when something needs a look, so the view is not only found by those who look.
  function renderFlag() {
    const flag = byId("mon-flag");
    const serious = (snapshot?.events || []).filter((e) => e.severity !== "info").length;
    flag.hidden = !serious;
    flag.textContent = serious ? String(serious) : "";
    flag.title = serious ? t("mon.flag", { n: serious }) : "";
  }

  function renderHeader() {
    const facts = byId("mon-facts");
    const fact = (label, value) => {
      const item = el("div");
      const dd = el("dd");
      if (value instanceof Node) dd.append(value);
      else dd.textContent = value ?? "–";
      item.append(el("dt", null, label), dd);
      return item;
    };
    const url = mlflowRunUrl(snapshot.run_id);
    let run = "–";
    if (url) {
      run = el("a", null, t("model.run_link", { run: snapshot.run_id.slice(0, 8) }));
      run.href = url;
      run.target = "_blank";
      run.rel = "noopener";
    }
    facts.replaceChildren(
      fact(t("mon.champion"), snapshot.champion || t("mon.no_champion")),
      fact(t("mon.evaluated_at"), moment(snapshot.generated_at)),
      fact(t("mon.feature_set"), `v${snapshot.feature_set_version}`),
      fact(t("mon.evaluation_run"), run),
    );
    byId("mon-window").replaceChildren(windowLine(t("mon.window.recent"), recentWindow()));
  }

  // -- errors: recent, served, at training --------------------------------------------------

  function change(recent, trained, mode) {
    if (recent == null || trained == null) return { text: "–", worse: false };
    if (mode === "absolute") {
      const diff = recent - trained;
      return { text: `${diff >= 0 ? "+" : "−"}${fmt(Math.abs(diff), 2)}`, worse: diff < 0 };
    }
    if (!trained) return { text: "–", worse: false };
    const ratio = recent / trained - 1;
    return { text: `${ratio >= 0 ? "+" : "−"}${percent(Math.abs(ratio))}`, worse: ratio > 0 };
  }

  function headerRow(labels) {
    const row = el("tr");
    for (const label of labels) row.append(el("th", null, label));
    return row;
  }

  function renderErrors() {
    const recent = snapshot.recent?.metrics || {};
    const served = snapshot.served?.metrics || {};
    const trained = snapshot.trained || {};
    const table = el("table", "mon-table");
    table.id = "mon-errors-table";
    const head = el("thead");
    head.append(headerRow([t("mon.metric"), t("mon.col.recent"), t("mon.col.served"), t("mon.col.trained"), t("mon.col.change")]));
    const body = el("tbody");
    const degraded = new Set(eventsOf("degradation").map((e) => String(e.figures?.metric ?? "")));
    for (const [key, label, show, mode] of ERROR_METRICS) {
      const row = el("tr");
      row.dataset.metric = key;
      const value = (m) => (num(m[key]) == null ? "–" : show(num(m[key])));
      const delta = change(num(recent[key]), num(trained[key]), mode);
      row.append(el("th", null, t(label)), el("td", "num", value(recent)), el("td", "num", value(served)),
        el("td", "num", value(trained)), el("td", `num${delta.worse ? " worse" : ""}`, delta.text));
      if (degraded.has(key)) row.classList.add("flagged");
      body.append(row);
    }
    table.append(head, body);
    const wrap = el("div", "table-wrap");
    wrap.append(table);
    byId("mon-errors").replaceChildren(
      windowLine(t("mon.col.recent"), recentWindow()),
      windowLine(t("mon.col.served"), servedWindow()),
      windowLine(t("mon.col.trained"), trainedWindow()),
      wrap,
      structureDetails(),
    );
  }

  function structureDetails() {
    const details = el("details", "structures");
    details.append(el("summary", null, t("mon.by_structure")));
    const rows = snapshot.recent?.per_structure || [];
    const table = el("table", "mon-table");
    table.append(el("thead"), el("tbody"));
    table.tHead.append(headerRow([t("mon.structure"), t("mon.results"), t("mon.metric.mae"), t("mon.metric.mape"),
      t("mon.coverage"), t("mon.wrong_approvals"), t("mon.wrong_rejections")]));
    for (const s of rows) {
      const row = el("tr");
      row.append(el("th", null, s.structure), el("td", "num", count(s.n)), el("td", "num", fmt(num(s.mae))),
        el("td", "num", `${fmt(num(s.mape))} %`), el("td", "num", percent(num(s.coverage))),
        el("td", "num", count(s.wrong_approvals)), el("td", "num", count(s.wrong_rejections)));
      table.tBodies[0].append(row);
    }
    details.append(windowLine(t("mon.col.recent"), recentWindow()), table);
    return details;
  }

  // -- coverage -----------------------------------------------------------------------------

  function coverageGauge(coverage, level) {
    const gauge = svg("svg", { class: "gauge", viewBox: "0 0 300 34", role: "img",
      "aria-label": t("mon.coverage_value", { coverage: percent(coverage), level: percent(level) }) });
    const x = (p) => 4 + p * 292;
    gauge.append(svg("rect", { class: "gauge-track", x: 4, y: 8, width: 292, height: 12, rx: 6 }));
    gauge.append(svg("rect", { class: "gauge-fill", x: 4, y: 8, width: Math.max(0, x(coverage) - 4), height: 12, rx: 6 }));
    gauge.append(svg("line", { class: "gauge-level", x1: x(level), x2: x(level), y1: 3, y2: 25 }));
    gauge.append(svg("text", { x: x(level), y: 33, "text-anchor": "middle" }, t("mon.level", { level: percent(level) })));
    return gauge;
  }

  function renderCoverage() {
    const box = byId("mon-coverage");
    const recent = snapshot.recent;
    const coverage = num(recent?.metrics?.coverage);
    const level = num(recent?.level);
    if (coverage == null || level == null) {
      box.replaceChildren(windowLine(null, recentWindow()), el("p", "muted", t("mon.no_recent")));
      return;
    }
    const difference = Math.round((coverage - level) * 100);
    const points = `${difference > 0 ? "+" : difference < 0 ? "−" : ""}${fmt(Math.abs(difference))}`;
    const flagged = eventsOf("coverage").length > 0;
    const status = el("p", `status ${flagged ? "warn" : "ok"}`,
      flagged ? t("mon.coverage_flagged", { points }) : t("mon.coverage_near", { points }));
    const width = num(recent.metrics.mean_width);
    const trainedWidth = num(snapshot.trained?.mean_interval_width);
    const lines = [
      windowLine(null, recentWindow()),
      el("p", "big", percent(coverage)),
      el("p", null, t("mon.coverage_value", { coverage: percent(coverage), level: percent(level) })),
      coverageGauge(coverage, level),
      status,
      el("p", "small", t("mon.mean_width", { width: width == null ? "–" : `${fmt(width)} ${t("unit.wvtr")}`,
        trained: trainedWidth == null ? "–" : `${fmt(trainedWidth)} ${t("unit.wvtr")}` })),
    ];
    const trainedCoverage = num(snapshot.trained?.coverage);
    if (trainedCoverage != null) lines.push(el("p", "small", t("mon.coverage_trained", { coverage: percent(trainedCoverage) })));
    const served = num(snapshot.served?.metrics?.coverage);
    if (served != null) {
      lines.push(el("p", "small", t("mon.coverage_served", { coverage: percent(served) })), windowLine(t("mon.col.served"), servedWindow()));
    }
    box.replaceChildren(...lines);
  }

  // -- decision quality ---------------------------------------------------------------------

  function decisionBlock(decisions) {
    const block = el("div", "decision-counts");
    for (const decision of DECISIONS) {
      const badge = el("span", `badge ${decision}`,
        `${{ approve: "✓", reject: "✗", retest: "?" }[decision]} ${t(`decision.${decision}`)}: ${count(decisions[decision] ?? 0)}`);
      badge.dataset.decision = decision;
      badge.dataset.count = String(decisions[decision] ?? 0);
      block.append(badge);
    }
    block.append(el("span", "badge none", `– ${t("mon.no_limit")}: ${count(decisions.no_limit ?? 0)}`));
    const wrongApprovals = decisions.wrong_approvals ?? 0;
    const wrongRejections = decisions.wrong_rejections ?? 0;
    const mistakes = el("ul", "mistakes");
    const approvals = el("li", wrongApprovals ? "bad" : "ok",
      t("mon.wrong_approvals_text", { n: count(wrongApprovals), of: count(decisions.approve ?? 0) }));
    approvals.dataset.kind = "wrong_approvals";
    const rejections = el("li", wrongRejections ? "bad" : "ok",
      t("mon.wrong_rejections_text", { n: count(wrongRejections), of: count(decisions.reject ?? 0) }));
    rejections.dataset.kind = "wrong_rejections";
    mistakes.append(approvals, rejections);
    return [block, mistakes];
  }

  function renderDecisions() {
    const box = byId("mon-decisions");
    const parts = [];
    if (snapshot.recent?.decisions) {
      parts.push(windowLine(t("mon.col.recent"), recentWindow()), ...decisionBlock(snapshot.recent.decisions));
    } else {
      parts.push(windowLine(null, recentWindow()), el("p", "muted", t("mon.no_recent")));
    }
    if (snapshot.served?.decisions) {
      parts.push(windowLine(t("mon.col.served"), servedWindow()), ...decisionBlock(snapshot.served.decisions));
    }
    box.replaceChildren(...parts);
  }

  // -- drift --------------------------------------------------------------------------------

  function featureName(name) {
    const key = `mon.feature.${name}`;
    const text = t(key);
    return text === key ? name : text;
  }

  function structureName(name) {
    return name === "ALL" ? t("mon.all_structures") : name;
  }

  function pValue(p) {
    const value = num(p);
    if (value == null) return "–";
    return value < 0.001 ? value.toExponential(1) : fmt(value, 2);
  }

  function driftTable(tests) {
    const table = el("table", "mon-table");
    table.append(el("thead"), el("tbody"));
    table.tHead.append(headerRow([t("mon.feature"), t("mon.structure"), "PSI", "p", t("mon.results_recent"), t("mon.results_training")]));
    for (const test of tests) {
      const row = el("tr", test.drifted ? "flagged" : "");
      row.dataset.feature = test.feature;
      row.append(el("th", null, featureName(test.feature)), el("td", null, structureName(test.structure)),
        el("td", "num", fmt(num(test.psi), 2)), el("td", "num", pValue(test.p_value)),
        el("td", "num", count(test.n_current)), el("td", "num", count(test.n_reference)));
      table.tBodies[0].append(row);
    }
    const wrap = el("div", "table-wrap");
    wrap.append(table);
    return wrap;
  }

  function driftVerdict(flagged, fresh, tests) {
    if (flagged) return t("mon.drift_flagged", { flagged: count(flagged), tests: count(tests) });
    if (fresh) return t("mon.drift_new_only", { tests: count(tests) });
    return t("mon.drift_clear", { tests: count(tests) });
  }

  function renderDrift() {
    const box = byId("mon-drift");
    const drift = snapshot.drift;
    if (!drift) {
      box.replaceChildren(windowLine(null, recentWindow()), el("p", "muted", t("mon.drift_none_assessed")));
      return;
    }
    const compared = { ...recentWindow(), rows: drift.n_current, extra: t("mon.window.reference", { n: count(drift.n_reference) }) };
    const flagged = drift.tests.filter((test) => test.drifted);
    const least = drift.thresholds?.min_new_structure_rows ?? 1;
    const fresh = Object.entries(drift.new_structures || {}).filter(([, n]) => n >= least);
    const drifted = flagged.length > 0 || fresh.length > 0;
    const parts = [
      windowLine(null, compared),
      el("p", `status ${drifted ? "warn" : "ok"}`, driftVerdict(flagged.length, fresh.length, drift.tests.length)),
      el("p", "small muted", t("mon.drift_rule", { psi: fmt(num(drift.thresholds?.psi), 2),
        alpha: pValue(drift.corrected_alpha), family: fmt(num(drift.thresholds?.alpha), 2), tests: count(drift.tests.length) })),
    ];
    if (flagged.length) parts.push(driftTable(flagged));
    if (fresh.length) {
      const list = el("ul", "new-structures");
      list.id = "mon-new-structures";
      for (const [name, n] of fresh.sort(([a], [b]) => a.localeCompare(b))) {
        const item = el("li", null, t("mon.new_structure", { structure: name, n: count(n) }));
        item.dataset.structure = name;
        list.append(item);
      }
      parts.push(el("h4", null, t("mon.new_structures")), list, el("p", "small muted", t("mon.new_structures_note")));
    }
    if (drift.missing_structures?.length) {
      parts.push(el("p", "small", t("mon.missing_structures", { structures: drift.missing_structures.join(", ") })));
    }
    const all = el("details", "structures");
    all.append(el("summary", null, t("mon.all_comparisons", { n: count(drift.tests.length) })), driftTable(drift.tests));
    parts.push(all);
    box.replaceChildren(...parts);
  }

  // -- control chart ------------------------------------------------------------------------

  function chartWindow(series) {
    const points = series.points || [];
    return {
      first: points[0]?.when ?? null,
      last: points.at(-1)?.when ?? null,
      rows: points.length,
      extra: t("mon.window.baseline", { n: count(series.baseline_points) }),
    };
  }

  function renderChart() {
    const box = byId("mon-chart");
    const charts = snapshot.control_chart || [];
    if (!charts.length) {
      box.replaceChildren(el("p", "muted", t("mon.chart.none")));
      return;
    }
    const blocks = charts.map((series) => {
      const block = el("figure", "series");
      block.dataset.reference = series.reference;
      block.dataset.series = series.series;
      block.dataset.status = series.status;
      const head = el("div", "series-head");
      head.append(el("h4", null, series.series ? `${series.reference} · ${series.series}` : series.reference));
      head.append(el("span", `badge ${{ in_control: "approve", out_of_control: "reject" }[series.status] || "none"}`,
        t(`mon.chart.status.${series.status}`)));
      block.append(head, windowLine(null, chartWindow(series)), chart.draw(series));
      const caption = el("figcaption", "small muted");
      if (series.note) caption.append(el("span", "note-text", series.note), " ");
      caption.append(el("span", null, t("mon.chart.legend")));
      block.append(caption);
      return block;
    });
    box.replaceChildren(...blocks);
  }

  // -- events -------------------------------------------------------------------------------

  function figureText(key, value) {
    if (typeof value === "number") return `${key} ${fmt(value)}`;
    if (typeof value === "boolean") return `${key} ${t(value ? "mon.yes" : "mon.no")}`;
    return `${key} ${value ?? "–"}`;
  }

  function renderEvents() {
    const box = byId("mon-events");
    const events = [...(snapshot.events || [])].sort((a, b) =>
      (SEVERITY_ORDER[a.severity] ?? 3) - (SEVERITY_ORDER[b.severity] ?? 3) || String(b.occurred_at).localeCompare(String(a.occurred_at)));
    if (!events.length) {
      box.replaceChildren(el("p", "muted", t("mon.events.none")));
      return;
    }
    const list = el("ul", "events");
    for (const event of events) {
      const item = el("li", `event ${event.severity}`);
      item.dataset.kind = event.kind;
      item.dataset.severity = event.severity;
      const head = el("p", "event-head");
      head.append(el("span", `severity ${event.severity}`, t(`mon.severity.${event.severity}`)), " ",
        el("strong", null, t(`mon.event.${event.kind}`)), " · ", el("span", "subject", event.subject));
      const figures = Object.entries(event.figures || {}).map(([k, v]) => figureText(k, v)).join(" · ");
      item.append(head);
      if (figures) item.append(el("p", "small figures", figures));
      const when = el("p", "small muted", moment(event.occurred_at));
      const url = mlflowRunUrl(event.run_id);
      if (url) {
        const link = el("a", null, t("model.run_link", { run: event.run_id.slice(0, 8) }));
        link.href = url;
        link.target = "_blank";
        link.rel = "noopener";
        when.append(" · ", link);
      }
      item.append(when);
      list.append(item);
    }
    box.replaceChildren(list);
  }

  byId("mon-refresh").addEventListener("click", () => load());
  return { load, render, setVisible };
};
