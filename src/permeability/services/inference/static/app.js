// The lab page: one sample or a whole file -> guide value, interval and decision.
// Plain JS, no build step, no external assets; talks only to the inference API of this origin.
"use strict";

(() => {
  const CALIBRES = ["Calibre1", "Calibre2", "Calibre3", "Calibre4", "Calibre5"];
  const NUMERIC = ["Grados_C", "Porc_Humedad", ...CALIBRES, "CalibreProm"];
  const FIELDS = ["Muestra", "Estructura", ...NUMERIC];
  // Same tolerance as record/schema.py caliper_mean_consistent (the API applies it too).
  const MEAN_REL_TOL = 0.03;
  const MEAN_ABS_TOL_UM = 0.2;
  const BATCH_COLUMNS = ["Muestra", "Estructura", "col.conditions", "CalibreProm"];
  // A browser table of a whole back-catalogue would freeze the page; the download has every row.
  const TABLE_ROWS = 1000;

  const state = {
    lang: "en",
    strings: {},
    versions: [],
    champion: null,
    specs: [],
    mlflowUi: null,
    meanTyped: false,
    lastAnswer: null,
    lastSample: null,
    batchRows: null,
    batchVersion: null,
    batchName: "results",
    view: "guide",
  };
  let monitoring = null; // the monitoring view (static/monitoring.js), made in start()

  const byId = (id) => document.getElementById(id);

  // -- language -------------------------------------------------------------------------------

  function t(key, vars = {}) {
    const table = state.strings[state.lang] || {};
    const text = table[key] ?? state.strings.en?.[key] ?? key;
    return text.replace(/\{(\w+)\}/g, (_, name) => (name in vars ? String(vars[name]) : `{${name}}`));
  }

  function preferredLanguage() {
    const saved = localStorage.getItem("permeability.lang");
    if (saved === "es" || saved === "en") return saved;
    const wanted = navigator.languages?.length ? navigator.languages : [navigator.language || "en"];
    for (const tag of wanted) {
      const base = String(tag).toLowerCase().slice(0, 2);
      if (base === "es" || base === "en") return base;
    }
    return "en";
  }

  function setLanguage(lang) {
    state.lang = lang;
    localStorage.setItem("permeability.lang", lang);
    document.documentElement.lang = lang;
    document.title = t("title");
    for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
    for (const button of document.querySelectorAll("[data-lang]")) {
      button.setAttribute("aria-pressed", String(button.dataset.lang === lang));
    }
    renderVersionOptions();
    renderModelFacts();
    renderStructures();
    updateMeanNote();
    if (state.lastAnswer) renderAnswer(state.lastAnswer, state.lastSample);
    if (state.batchRows) renderBatch();
    monitoring?.render();
  }

  // -- views: the guide value (default) or the monitoring of the champion (#monitoring) -------

  function showView(name) {
    state.view = name === "monitoring" ? "monitoring" : "guide";
    for (const tab of document.querySelectorAll("[data-view]")) {
      const selected = tab.dataset.view === state.view;
      tab.setAttribute("aria-selected", String(selected));
      byId(`view-${tab.dataset.view}`).hidden = !selected;
    }
    monitoring?.setVisible(state.view === "monitoring");
    if (state.view === "monitoring") monitoring?.load();
  }

  function viewFromLocation() {
    return location.hash === "#monitoring" ? "monitoring" : "guide";
  }

  // -- numbers --------------------------------------------------------------------------------

  function fmt(value, digits = 3) {
    if (value === null || value === undefined || Number.isNaN(value)) return "–";
    const options = Math.abs(value) >= 10 ** digits
      ? { maximumFractionDigits: 0 }
      : { maximumSignificantDigits: digits };
    return new Intl.NumberFormat(state.lang, options).format(value);
  }

  function percent(p) {
    if (p === null || p === undefined) return "–";
    const format = (x) => new Intl.NumberFormat(state.lang, { style: "percent", maximumFractionDigits: 0 }).format(x);
    if (p < 0.01) return `< ${format(0.01)}`;
    if (p > 0.99) return `> ${format(0.99)}`;
    return format(p);
  }

  // "25,6" and " 25.6 " are numbers; "" is missing (null); anything else is kept as text so
  // the API reports it next to its field.
  function parseField(text) {
    const trimmed = text.trim();
    if (trimmed === "") return null;
    const normalised = trimmed.includes(".") ? trimmed : trimmed.replace(",", ".");
    const number = Number(normalised);
    return Number.isFinite(number) ? number : trimmed;
  }

  function readingsMean() {
    const values = CALIBRES.map((name) => parseField(byId(`f-${name}`).value)).filter((v) => typeof v === "number");
    return values.length ? values.reduce((a, b) => a + b, 0) / values.length : null;
  }

  function meanAgrees(stated, mean) {
    return Math.abs(stated - mean) <= Math.max(MEAN_ABS_TOL_UM, MEAN_REL_TOL * Math.abs(mean));
  }

  // -- caliper mean: filled in live, flagged when a typed value disagrees ---------------------

  function onReadingInput() {
    const mean = readingsMean();
    if (!state.meanTyped) byId("f-CalibreProm").value = mean === null ? "" : String(Math.round(mean * 100) / 100);
    updateMeanNote();
  }

  function updateMeanNote() {
    const note = byId("mean-note");
    const mean = readingsMean();
    const stated = parseField(byId("f-CalibreProm").value);
    byId("use-mean").hidden = !state.meanTyped || mean === null;
    note.className = "note";
    if (mean === null) {
      note.textContent = t("mean.waiting");
    } else if (!state.meanTyped) {
      note.textContent = t("mean.auto");
    } else if (typeof stated === "number" && meanAgrees(stated, mean)) {
      note.textContent = t("mean.ok", { mean: fmt(mean, 4) });
      note.classList.add("ok");
    } else {
      note.textContent = `⚠ ${t("mean.differs", { mean: fmt(mean, 4) })}`;
      note.classList.add("warn");
    }
  }

  // -- API ------------------------------------------------------------------------------------

  // PERMEABILITY_INFERENCE_TOKEN: when the service has one, its POSTs answer 401 without it.
  // The page then asks once, keeps the token for this browser tab's session (sessionStorage:
  // gone when the tab closes, never sent to another site) and sends it on every later POST.
  const TOKEN_KEY = "permeability.token";

  function storedToken() {
    try {
      return sessionStorage.getItem(TOKEN_KEY);
    } catch {
      return null; // storage disabled: ask each time
    }
  }

  function keepToken(token) {
    try {
      if (token) sessionStorage.setItem(TOKEN_KEY, token);
      else sessionStorage.removeItem(TOKEN_KEY);
    } catch {
      // storage disabled: the token is used for this request only
    }
  }

  async function send(path, options, token) {
    const headers = { Accept: "application/json", ...(options.headers || {}) };
    if (token) headers.Authorization = `Bearer ${token}`;
    return fetch(path, { ...options, headers });
  }

  async function api(path, options = {}) {
    const posting = (options.method || "GET").toUpperCase() === "POST";
    let token = posting ? storedToken() : null;
    let response = await send(path, options, token);
    if (posting && response.status === 401) {
      if (token) keepToken(null); // the kept token was refused (changed on the server)
      const given = (window.prompt(t("token.prompt")) || "").trim();
      if (given) {
        token = given;
        response = await send(path, options, token);
        keepToken(response.status === 401 ? null : token);
        if (response.status === 401) showPageError(t("token.refused"));
      }
    }
    if (posting && response.status !== 401 && byId("page-error").textContent === t("token.refused")) {
      showPageError("");
    }
    let body = null;
    try {
      body = await response.json();
    } catch {
      body = null;
    }
    return { ok: response.ok, status: response.status, body };
  }

  function showPageError(text) {
    const banner = byId("page-error");
    banner.textContent = text;
    banner.hidden = !text;
  }

  // -- model context --------------------------------------------------------------------------

  async function loadContext() {
    const [versions, specs, config] = await Promise.all([api("versions"), api("specs"), api("page/config")]);
    if (!versions.ok) {
      showPageError(t("error.network", { status: versions.status }));
      return;
    }
    state.versions = versions.body.versions || [];
    state.champion = versions.body.champion ?? null;
    state.specs = specs.ok ? specs.body.limits || [] : [];
    state.mlflowUi = config.ok ? config.body : null;
    const select = byId("version");
    renderVersionOptions();
    const usable = state.versions.filter((v) => v.status === "available");
    select.value = state.champion && usable.some((v) => v.version === state.champion)
      ? state.champion
      : usable[0]?.version ?? "";
    showPageError(usable.length ? "" : t("model.none"));
    renderModelFacts();
    renderStructures();
  }

  function selectedVersion() {
    const label = byId("version").value;
    return state.versions.find((v) => v.version === label) || null;
  }

  function renderVersionOptions() {
    const select = byId("version");
    const current = select.value;
    select.replaceChildren(...state.versions.map((v) => {
      const option = new Option(v.version, v.version);
      if (v.status !== "available") {
        option.disabled = true;
        option.textContent = t("model.unavailable", { version: v.version, reason: v.reason || "" });
      } else if (v.version === state.champion) {
        option.textContent = t("model.champion", { version: v.version });
      }
      return option;
    }));
    if (current) select.value = current;
  }

  function versionInfo(label) {
    return state.versions.find((v) => v.version === label) || null;
  }

  function mlflowRunUrl(runId) {
    if (!runId) return null;
    const config = state.mlflowUi || {};
    const base = config.mlflow_ui_url || `${location.protocol}//${location.hostname}:${config.mlflow_ui_port || 5000}`;
    return `${base}/#/runs/${encodeURIComponent(runId)}`;
  }

  function renderModelFacts() {
    const version = selectedVersion();
    const metrics = version?.metrics || {};
    const created = version?.created_at ? new Date(version.created_at) : null;
    byId("fact-trained").textContent = created && !Number.isNaN(created.getTime())
      ? created.toLocaleString(state.lang, { dateStyle: "medium", timeStyle: "short" })
      : "–";
    byId("fact-n-train").textContent = version?.n_train != null ? t("model.n_train_value", { n: fmt(version.n_train, 9) }) : "–";
    byId("fact-mae").textContent = metrics.mae != null ? `${fmt(metrics.mae)} ${t("unit.wvtr")}` : "–";
    byId("fact-noise-floor").textContent = metrics.noise_floor_mae != null
      ? t("model.noise_floor_value", {
          floor: `${fmt(metrics.noise_floor_mae)} ${t("unit.wvtr")}`,
          ratio: fmt(metrics.mae_over_noise_floor),
        })
      : "–";
    byId("fact-coverage").textContent = metrics.coverage != null
      ? t("model.coverage_value", { coverage: percent(metrics.coverage) })
      : "–";
    byId("fact-model").textContent = version?.model || "–";
    const run = byId("fact-run");
    const url = mlflowRunUrl(version?.run_id);
    if (url) {
      const link = document.createElement("a");
      link.href = url;
      link.target = "_blank";
      link.rel = "noopener";
      link.textContent = t("model.run_link", { run: version.run_id.slice(0, 8) });
      run.replaceChildren(link);
    } else {
      run.textContent = "–";
    }
    byId("fact-structures").textContent = offeredStructures(version).join(", ") || "–";
  }

  // A shell pattern of the service (its * and ?) as a regular expression.
  function globRegExp(pattern) {
    let source = "";
    for (const char of String(pattern)) {
      source += char === "*" ? ".*" : char === "?" ? "." : /[\\^$+.()|{}\[\]]/.test(char) ? `\\${char}` : char;
    }
    return new RegExp(`^${source}$`);
  }

  // The structures a version accepts, never a calibration/reference film or an unreported
  // material: the service already leaves them out; the page checks the version's patterns too.
  function offeredStructures(version) {
    const patterns = (version?.non_product || []).map(globRegExp);
    return (version?.known_structures || []).filter((name) => !patterns.some((p) => p.test(name)));
  }

  function renderStructures() {
    const select = byId("f-Estructura");
    const current = select.value;
    const known = offeredStructures(selectedVersion());
    const placeholder = new Option(t("structure.choose"), "");
    select.replaceChildren(placeholder, ...known.map((name) => new Option(name, name)));
    select.value = known.includes(current) ? current : "";
  }

  // -- one sample -----------------------------------------------------------------------------

  // Empty fields are left out, so the API names them as missing (not as "not a number").
  function sampleFromForm() {
    const data = {};
    for (const name of FIELDS) {
      const raw = byId(`f-${name}`).value;
      const value = name === "Estructura" ? raw || null : parseField(raw);
      if (value !== null) data[name] = value;
    }
    return data;
  }

  function clearErrors() {
    for (const name of FIELDS) setFieldError(name, "");
    byId("form-error").textContent = "";
  }

  function setFieldError(name, text) {
    const field = document.querySelector(`[data-field="${name}"]`);
    if (!field) return false;
    field.classList.toggle("invalid", Boolean(text));
    byId(`e-${name}`).textContent = text;
    byId(`f-${name}`).setAttribute("aria-invalid", String(Boolean(text)));
    return true;
  }

  async function submitSample(event) {
    event.preventDefault();
    clearErrors();
    const version = byId("version").value;
    const data = sampleFromForm();
    const button = byId("predict");
    button.disabled = true;
    button.textContent = t("single.busy");
    try {
      const body = version ? { version, data_test: data } : { data_test: data };
      const answer = await api("inference", {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify(body),
      });
      if (answer.ok) {
        state.lastAnswer = answer.body;
        state.lastSample = data;
        renderAnswer(answer.body, data);
      } else {
        hideAnswer();
        showApiErrors(answer);
      }
    } catch (error) {
      byId("form-error").textContent = t("error.network", { status: error.message });
    } finally {
      button.disabled = false;
      button.textContent = t("single.submit");
    }
  }

  // FastAPI's 422: {"detail": [{"loc": [..., "field"], "msg", "type", "ctx"}]}; other errors:
  // {"detail": "one sentence"}. Each problem goes next to its field, in plain words.
  function showApiErrors(answer) {
    const detail = answer.body?.detail;
    const problems = Array.isArray(detail) ? detail : [];
    let unplaced = [];
    for (const problem of problems) {
      const loc = Array.isArray(problem.loc) ? problem.loc.map(String) : [];
      const field = [...loc].reverse().find((part) => FIELDS.includes(part));
      if (!field || !setFieldError(field, plainMessage(field, problem))) unplaced.push(problem.msg);
    }
    if (!problems.length) unplaced = [typeof detail === "string" ? detail : t("error.network", { status: answer.status })];
    if (unplaced.length) {
      byId("form-error").textContent = t("error.service", { message: unplaced.join("; ") });
    } else {
      byId("form-error").textContent = t("single.fix");
      const first = problems.map((p) => [...(p.loc || [])].reverse().find((part) => FIELDS.includes(part))).find(Boolean);
      if (first) byId(`f-${first}`).focus();
    }
  }

  // pydantic's error types (and the service's own: number_type, caliper_mean_inconsistent,
  // unknown_structure) -> a sentence a technician understands, in the page's language.
  function plainMessage(field, problem) {
    const type = String(problem.type || "");
    if (type === "missing") return t("error.required");
    if (field === "Muestra") return t("error.whole");
    if (field === "Estructura") {
      if (type === "non_product") return t("error.non_product");
      return type === "unknown_structure" ? t("error.structure") : t("error.required");
    }
    if (type === "caliper_mean_inconsistent") {
      const mean = problem.ctx?.mean ?? readingsMean();
      return t("error.mean", { mean: fmt(Number(mean), 4) });
    }
    if (/^(greater|less)_than/.test(type)) {
      return CALIBRES.includes(field) || field === "CalibreProm" ? t("error.range.caliper") : t(`error.range.${field}`);
    }
    if (/_type$|_parsing$|finite_number/.test(type)) return t("error.number");
    return String(problem.msg || type);
  }

  // The service's row errors ("Porc_Humedad '150' is outside (0, 100] % RH; ...") in the
  // page's words; the downloaded CSV keeps the service's own text.
  const ROW_PROBLEMS = [
    [/^\w+ (?:.+ )?is missing$/, () => ({ type: "missing" })],
    [/^Muestra /, () => ({ type: "integer_type" })],
    [/^CalibreProm .+ does not match the mean of the readings \(([\d.]+)/, (m) => ({ type: "caliper_mean_inconsistent", ctx: { mean: m[1] } })],
    [/^Estructura .* is not known/, () => ({ type: "unknown_structure_row" })],
    [/^Estructura .* not a product/, () => ({ type: "non_product" })],
    [/^\w+ .+ is outside [[(]/, () => ({ type: "greater_than" })],
    [/^(\w+) /, () => ({ type: "number_type" })],
  ];

  function plainRowError(text) {
    return String(text).split("; ").map((part) => {
      const field = FIELDS.find((name) => part.startsWith(`${name} `));
      if (!field) return part;
      for (const [pattern, problem] of ROW_PROBLEMS) {
        const match = part.match(pattern);
        if (match) {
          const words = problem(match).type === "unknown_structure_row" ? t("error.structure_row") : plainMessage(field, problem(match));
          return `${field}: ${words}`;
        }
      }
      return part;
    }).join(" ");
  }

  function hideAnswer() {
    state.lastAnswer = null;
    byId("result-body").hidden = true;
    byId("result-empty").hidden = false;
  }

  function decisionOf(answer) {
    return ["approve", "reject", "retest"].includes(answer.decision) ? answer.decision : "none";
  }

  function conditionsText(c) {
    return `${fmt(c.temperature_c)} ± ${fmt(c.temperature_tolerance_c)} °C / ${fmt(c.humidity_pct)} ± ${fmt(c.humidity_tolerance_pct)} ${t("unit.rh")}`;
  }

  function limitText(spec) {
    return t("result.limit_value", { limit: fmt(spec.limit), unit: t("unit.wvtr"), conditions: conditionsText(spec.conditions) });
  }

  function intervalText(interval, unit) {
    if (interval.upper == null) return t("result.unbounded", { lower: fmt(interval.lower), unit });
    return `${fmt(interval.lower)} – ${fmt(interval.upper)} ${unit}`;
  }

  function renderAnswer(answer, sample) {
    const decision = decisionOf(answer);
    const spec = answer.specification;
    byId("result-empty").hidden = true;
    byId("result-body").hidden = false;
    const box = byId("decision");
    box.className = `decision ${decision}`;
    box.dataset.decision = decision;
    box.querySelector(".decision-icon").textContent = { approve: "✓", reject: "✗", retest: "?", none: "–" }[decision];
    byId("decision-word").textContent = t(`decision.${decision}`);
    byId("decision-text").textContent = decision === "none"
      ? noDecisionText(answer, sample)
      : t(`decision.${decision}.text`, { p: percent(answer.p_exceed) });
    // Under the detection limit a number would be false precision: the lab would read 0.
    const below = answer.below_detection_limit === true && answer.detection_limit != null;
    byId("r-prediction").textContent = below
      ? `< ${fmt(answer.detection_limit)} ${t("unit.wvtr")}`
      : `${fmt(answer.prediction.value)} ${t("unit.wvtr")}`;
    byId("r-prediction").title = below
      ? t("result.below_limit", { limit: fmt(answer.detection_limit), unit: t("unit.wvtr") })
      : "";
    const interval = answer.interval;
    byId("r-interval-label").textContent = t("result.interval", { level: percent(interval.level) });
    byId("r-interval").textContent = intervalText(interval, t("unit.wvtr"));
    byId("r-limit").textContent = spec ? limitText(spec) : t("result.no_limit");
    byId("r-p-exceed").textContent = answer.p_exceed == null ? "–" : percent(answer.p_exceed);
    const caveats = [];
    if (answer.basis === "layers") caveats.push(t("result.from_family", { stand_in: answer.stand_in }));
    if (answer.extrapolated === true) caveats.push(t("result.extrapolated"));
    byId("r-meta").textContent = [
      t("result.meta", {
        version: answer.version,
        sample: sample?.Muestra ?? "–",
        structure: answer.structure,
      }),
      ...caveats,
    ].join(" ");
    drawChart(answer, decision);
  }

  // Why there is no decision, worded from the limits in force (GET /specs), mirroring how the
  // service matches a limit: structure, then thickness band, then test conditions.
  function noDecisionText(answer, sample) {
    const structure = answer.structure;
    const limits = state.specs.filter((s) => s.structure === structure);
    if (!limits.length) return t("decision.none.no_spec", { structure });
    const thickness = typeof sample?.CalibreProm === "number" ? sample.CalibreProm : null;
    const inBand = limits.filter((s) => thickness === null
      || ((s.min_thickness_um == null || thickness >= s.min_thickness_um)
        && (s.max_thickness_um == null || thickness <= s.max_thickness_um)));
    if (!inBand.length) {
      const bands = limits.map((s) => `${s.min_thickness_um ?? 0}–${s.max_thickness_um ?? "∞"} µm`).join(", ");
      return t("decision.none.thickness", { structure, bands, thickness: fmt(thickness, 4) });
    }
    const stated = [...new Set(inBand.map(conditionsText))].join("; ");
    const tested = `${fmt(sample?.Grados_C)} °C / ${fmt(sample?.Porc_Humedad)} ${t("unit.rh")}`;
    return t("decision.none.conditions", { structure, stated, tested });
  }

  // -- chart: the interval as a bar, the estimate as a dot, the limit as a red dashed line ----

  const SVG_NS = "http://www.w3.org/2000/svg";

  function svg(name, attributes, text) {
    const node = document.createElementNS(SVG_NS, name);
    for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, String(value));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function niceTicks(low, high, count = 5) {
    const raw = (high - low) / count;
    const power = 10 ** Math.floor(Math.log10(raw));
    const step = [1, 2, 2.5, 5, 10].map((m) => m * power).find((s) => s >= raw) || raw;
    const ticks = [];
    for (let v = Math.ceil(low / step) * step; v <= high + step * 1e-9; v += step) ticks.push(Number(v.toPrecision(12)));
    return ticks;
  }

  function logTicks(low, high) {
    const ticks = [];
    const decades = Math.log10(high / low);
    const steps = decades > 3 ? [1] : decades > 1.5 ? [1, 3] : [1, 2, 5];
    for (let power = Math.floor(Math.log10(low)); power <= Math.ceil(Math.log10(high)); power += 1) {
      for (const m of steps) {
        const v = m * 10 ** power;
        if (v >= low && v <= high) ticks.push(Number(v.toPrecision(6)));
      }
    }
    return ticks;
  }

  // Linear while the numbers are of one size; logarithmic when they span more than 20x (a
  // limit far from the estimate, a wide interval), so the bar never shrinks to a sliver.
  function scaleFor(points, left, right) {
    const min = Math.min(...points);
    const max = Math.max(...points);
    if (min > 0 && max / min > 20) {
      const low = min / 1.3;
      const high = max * 1.3;
      const at = (v) => left + (Math.log(v / low) / Math.log(high / low)) * (right - left);
      return { at, ticks: logTicks(low, high), log: true };
    }
    const span = max - min || Math.abs(max) || 1;
    const low = Math.max(0, min - 0.12 * span);
    const high = max + 0.12 * span;
    return { at: (v) => left + ((v - low) / (high - low)) * (right - left), ticks: niceTicks(low, high), log: false };
  }

  function drawChart(answer, decision) {
    const chart = byId("chart");
    const { lower } = answer.interval;
    const value = answer.prediction.value;
    const limit = answer.specification ? answer.specification.limit : null;
    const unbounded = answer.interval.upper == null;
    const known = [lower, value, ...(unbounded ? [] : [answer.interval.upper]), ...(limit == null ? [] : [limit])];
    // An interval with no upper bound is drawn running off the right edge.
    const upper = unbounded ? Math.max(...known) * 1.5 : answer.interval.upper;
    const left = 24;
    const right = 456;
    const scale = scaleFor([...known, upper], left, right);
    const x = scale.at;
    const unit = t("unit.wvtr");
    chart.replaceChildren();
    chart.setAttribute("aria-label", t("chart.title", {
      prediction: fmt(value), lower: fmt(lower), upper: unbounded ? "∞" : fmt(upper), limit: limit == null ? "–" : fmt(limit), unit,
    }));
    const axis = svg("g", { class: "axis" });
    axis.append(svg("line", { x1: left, x2: right, y1: 84, y2: 84 }));
    for (const tick of scale.ticks) {
      axis.append(svg("line", { x1: x(tick), x2: x(tick), y1: 84, y2: 89 }));
      axis.append(svg("text", { x: x(tick), y: 101, "text-anchor": "middle" }, fmt(tick)));
    }
    const title = `WVTR (${unit})${scale.log ? ` · ${t("chart.log")}` : ""}`;
    axis.append(svg("text", { x: right, y: 116, "text-anchor": "end" }, title));
    chart.append(axis);
    chart.append(svg("rect", {
      class: `band ${decision}`, x: x(lower), y: 48, width: Math.max(2, x(upper) - x(lower)), height: 20,
      rx: 4, "fill-opacity": 0.35,
    }));
    chart.append(svg("circle", { class: "point", cx: x(value), cy: 58, r: 6 }));
    chart.append(svg("text", { x: x(value), y: 40, "text-anchor": "middle", "font-weight": 700 }, fmt(value)));
    if (limit != null) {
      chart.append(svg("line", { class: "limit", x1: x(limit), x2: x(limit), y1: 18, y2: 84 }));
      const anchor = x(limit) > (left + right) / 2 ? "end" : "start";
      const shift = anchor === "end" ? -4 : 4;
      chart.append(svg("text", { class: "limit-label", x: x(limit) + shift, y: 16, "text-anchor": anchor },
        t("chart.limit", { limit: fmt(limit) })));
    }
  }

  // -- a whole file ---------------------------------------------------------------------------

  async function submitBatch(event) {
    event.preventDefault();
    const file = byId("batch-file").files[0];
    const error = byId("batch-error");
    error.textContent = "";
    if (!file) {
      error.textContent = t("batch.no_file");
      return;
    }
    const button = byId("batch-submit");
    button.disabled = true;
    button.textContent = t("batch.busy");
    byId("batch-download").disabled = true;
    try {
      const form = new FormData();
      form.append("file", file, file.name);
      const version = byId("version").value;
      if (version) form.append("version", version);
      const answer = await api("inference/batch?format=json", { method: "POST", body: form });
      if (!answer.ok) {
        const detail = answer.body?.detail;
        const text = Array.isArray(detail) ? detail.map((d) => d.msg).join("; ") : detail;
        error.textContent = t("error.service", { message: text || answer.status });
        return;
      }
      state.batchRows = answer.body.records;
      state.batchVersion = answer.body.version;
      state.batchName = file.name.replace(/\.[^.]+$/, "") || "results";
      renderBatch();
      byId("batch-download").disabled = false;
    } catch (failure) {
      error.textContent = t("error.network", { status: failure.message });
    } finally {
      button.disabled = false;
      button.textContent = t("batch.submit");
    }
  }

  function cell(text, className) {
    const td = document.createElement("td");
    td.textContent = text;
    if (className) td.className = className;
    return td;
  }

  function renderBatch() {
    const rows = state.batchRows || [];
    const counts = { approve: 0, reject: 0, retest: 0, none: 0, errors: 0 };
    for (const row of rows) {
      if (row.error) counts.errors += 1;
      else counts[["approve", "reject", "retest"].includes(row.decision) ? row.decision : "none"] += 1;
    }
    const shown = Object.fromEntries(Object.entries(counts).map(([key, n]) => [key, fmt(n, 9)]));
    byId("batch-summary").textContent = t("batch.summary", { rows: fmt(rows.length, 9), version: state.batchVersion, ...shown });
    const table = byId("batch-table");
    const head = document.createElement("tr");
    for (const name of [...BATCH_COLUMNS, "col.prediction", "col.interval", "col.limit", "col.p_exceed", "col.decision", "col.error"]) {
      const th = document.createElement("th");
      th.textContent = name.startsWith("col.") ? t(name) : name;
      head.append(th);
    }
    table.tHead.replaceChildren(head);
    table.tBodies[0].replaceChildren(...rows.slice(0, TABLE_ROWS).map(batchRow));
    table.hidden = false;
    const note = byId("batch-truncated");
    note.hidden = rows.length <= TABLE_ROWS;
    note.textContent = t("batch.truncated", { shown: fmt(TABLE_ROWS, 9), rows: fmt(rows.length, 9) });
  }

  function batchRow(row) {
    const tr = document.createElement("tr");
    if (row.error) tr.className = "failed";
    const text = (value) => (value == null ? "" : String(value));
    tr.append(cell(text(row.Muestra)), cell(text(row.Estructura)));
    tr.append(cell(`${text(row.Grados_C)} °C / ${text(row.Porc_Humedad)} ${t("unit.rh")}`));
    tr.append(cell(text(row.CalibreProm), "num"));
    const limit = state.versions.find((v) => v.version === state.batchVersion)?.detection_limit;
    tr.append(cell(row.below_detection_limit === true && limit != null ? `< ${fmt(limit)}` : fmt(row.prediction), "num"));
    tr.append(cell(row.lower == null ? "–" : intervalText(row, ""), "num"));
    tr.append(cell(row.limit == null ? "–" : fmt(row.limit), "num"));
    tr.append(cell(row.p_exceed == null ? "–" : percent(row.p_exceed), "num"));
    const decision = row.error ? null : ["approve", "reject", "retest"].includes(row.decision) ? row.decision : "none";
    const td = document.createElement("td");
    if (decision) {
      const badge = document.createElement("span");
      badge.className = `badge ${decision}`;
      badge.textContent = `${{ approve: "✓", reject: "✗", retest: "?", none: "–" }[decision]} ${t(`decision.${decision}`)}`;
      td.append(badge);
    }
    tr.append(td);
    if (row.error) {
      const problem = cell(plainRowError(row.error), "row-error");
      problem.title = row.error;
      tr.append(problem);
    } else {
      const note = cell(row.filled ? filledNote(row.filled) : "", "row-note");
      if (row.filled) note.title = row.filled;
      tr.append(note);
    }
    return tr;
  }

  // The service says e.g. "Calibre3, CalibreProm filled with the mean of Calibre1, ...".
  function filledNote(text) {
    const fields = String(text).split(" filled with ")[0];
    return t("batch.filled", { fields });
  }

  // The rows exactly as the service returned them (every column, input order), as CSV.
  function toCsv(rows) {
    const columns = [];
    for (const row of rows) for (const key of Object.keys(row)) if (!columns.includes(key)) columns.push(key);
    const quote = (value) => {
      if (value === null || value === undefined) return "";
      const text = String(value);
      return /[",\n\r]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
    };
    const lines = [columns.map(quote).join(","), ...rows.map((row) => columns.map((c) => quote(row[c])).join(","))];
    return `${lines.join("\r\n")}\r\n`;
  }

  function downloadBatch() {
    if (!state.batchRows) return;
    const blob = new Blob(["\ufeff", toCsv(state.batchRows)], { type: "text/csv;charset=utf-8" });
    const link = document.createElement("a");
    link.href = URL.createObjectURL(blob);
    link.download = `${state.batchName}_scored.csv`;
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 10000);
  }

  // -- start ----------------------------------------------------------------------------------

  async function start() {
    const strings = await api("static/i18n.json");
    state.strings = strings.ok ? strings.body : {};
    for (const button of document.querySelectorAll("[data-lang]")) {
      button.addEventListener("click", () => setLanguage(button.dataset.lang));
    }
    for (const name of CALIBRES) byId(`f-${name}`).addEventListener("input", onReadingInput);
    byId("f-CalibreProm").addEventListener("input", () => {
      state.meanTyped = byId("f-CalibreProm").value.trim() !== "";
      updateMeanNote();
    });
    byId("use-mean").addEventListener("click", () => {
      state.meanTyped = false;
      onReadingInput();
    });
    byId("version").addEventListener("change", () => {
      renderModelFacts();
      renderStructures();
    });
    const form = byId("sample-form");
    form.addEventListener("submit", submitSample);
    form.addEventListener("reset", () => {
      state.meanTyped = false;
      clearErrors();
      hideAnswer();
      setTimeout(updateMeanNote);
    });
    byId("batch-form").addEventListener("submit", submitBatch);
    byId("batch-download").addEventListener("click", downloadBatch);
    monitoring = window.PermeabilityMonitoring({ t, fmt, percent, api, svg, niceTicks, byId, mlflowRunUrl, versionInfo });
    // The view is in the address (#monitoring), so a link in a notification opens it.
    for (const tab of document.querySelectorAll("[data-view]")) {
      tab.addEventListener("click", () => {
        const address = tab.dataset.view === "monitoring" ? "#monitoring" : `${location.pathname}${location.search}`;
        history.replaceState(null, "", address);
        showView(tab.dataset.view);
      });
    }
    window.addEventListener("hashchange", () => showView(viewFromLocation()));
    setLanguage(preferredLanguage());
    await loadContext();
    showView(viewFromLocation());
    if (state.view !== "monitoring") await monitoring.load(); // the tab's flag: anything to look at
    document.body.dataset.ready = "true";
  }

  start().catch((error) => showPageError(t("error.network", { status: error.message })));
})();
