// The control chart of a reference film, drawn as inline SVG (no library, works offline): its
// results in order, the centre, the ±3σ control limits, where the baseline that set them ends,
// a red ring on every result that breaks a rule, a hollow dot for a censored one (below the
// detection limit), and a <title> on each point (date, record, value, rules) shown on hover.
// Values are drawn on the chart's own scale (log10 by default) and labelled in g/m²·day.
// Loaded before monitoring.js, which creates it with the page's helpers.
"use strict";

window.PermeabilityControlChart = ({ t, fmt, svg, niceTicks, day, num }) => {
  const count = (n) => fmt(n, 9);

  function ruleText(rule) {
    const key = `mon.rule.${rule}`;
    const text = t(key);
    return text === key ? String(rule) : text;
  }

  // The chart's value back in g/m²·day (a log10 chart stores log10 of the result).
  function measuredOf(series, value) {
    return series.scale === "log10" ? 10 ** value : value;
  }

  function pointTitle(series, point) {
    const parts = [day(point.when)];
    if (point.record) parts.push(point.record);
    parts.push(`${point.censored ? "< " : ""}${fmt(num(point.measured))} ${t("unit.wvtr")}`);
    if (point.censored) parts.push(t("mon.chart.censored"));
    if (point.baseline) parts.push(t("mon.chart.baseline_point"));
    for (const rule of point.violations || []) parts.push(ruleText(rule));
    return parts.join(" · ");
  }

  function drawControlChart(series) {
    const width = 940;
    const height = 250;
    const left = 58;
    const right = width - 96;
    const top = 14;
    const bottom = height - 40;
    const points = series.points || [];
    const centre = num(series.center);
    const upper = num(series.upper_limit);
    const lower = num(series.lower_limit);
    const values = [...points.map((p) => num(p.value)), centre, upper, lower].filter((v) => v != null);
    const chart = svg("svg", { class: "control-chart", viewBox: `0 0 ${width} ${height}`, role: "img",
      "aria-label": t("mon.chart.aria", { series: [series.reference, series.series].filter(Boolean).join(" · "), n: count(points.length),
        violations: count(points.filter((p) => p.violations?.length).length) }) });
    if (!values.length) return chart;
    let low = Math.min(...values);
    let high = Math.max(...values);
    const pad = (high - low || Math.abs(high) || 1) * 0.1;
    low -= pad;
    high += pad;
    const y = (v) => bottom - ((v - low) / (high - low)) * (bottom - top);
    const step = (right - left) / Math.max(points.length, 1);
    const x = (i) => left + (i + 0.5) * step;
    // Axis: ticks in g/m²·day, placed on the chart's scale.
    const axis = svg("g", { class: "axis" });
    axis.append(svg("line", { x1: left, x2: left, y1: top, y2: bottom }), svg("line", { x1: left, x2: right, y1: bottom, y2: bottom }));
    const [from, to] = [measuredOf(series, low), measuredOf(series, high)];
    for (const tick of niceTicks(Math.min(from, to), Math.max(from, to), 4)) {
      const v = series.scale === "log10" ? (tick > 0 ? Math.log10(tick) : null) : tick;
      if (v == null || v < low || v > high) continue;
      axis.append(svg("line", { x1: left - 4, x2: left, y1: y(v), y2: y(v) }));
      axis.append(svg("text", { x: left - 7, y: y(v) + 4, "text-anchor": "end" }, fmt(tick)));
    }
    const labelled = new Set([0, points.length - 1, Math.floor((points.length - 1) / 2)]);
    for (const i of labelled) {
      if (i < 0 || !points[i]) continue;
      axis.append(svg("text", { x: x(i), y: bottom + 16, "text-anchor": "middle" }, day(points[i].when)));
    }
    axis.append(svg("text", { x: left, y: height - 4 }, `${t("unit.wvtr")}${series.scale === "log10" ? ` · ${t("chart.log")}` : ""}`));
    chart.append(axis);
    // Where the baseline (the results that set the limits) ends.
    if (series.baseline_points > 0 && series.baseline_points < points.length) {
      const at = left + series.baseline_points * step;
      chart.append(svg("line", { class: "baseline-end", x1: at, x2: at, y1: top, y2: bottom }));
      chart.append(svg("text", { class: "baseline-label", x: at - 4, y: top + 10, "text-anchor": "end" }, t("mon.chart.baseline")));
    }
    const line = (value, className, label) => {
      if (value == null) return;
      chart.append(svg("line", { class: className, x1: left, x2: right, y1: y(value), y2: y(value) }));
      chart.append(svg("text", { class: `${className}-label`, x: right + 6, y: y(value) + 4 },
        `${label} ${fmt(measuredOf(series, value))}`));
    };
    line(centre, "centre", t("mon.chart.centre"));
    line(upper, "control-limit", t("mon.chart.ucl"));
    line(lower, "control-limit", t("mon.chart.lcl"));
    const path = points.map((p, i) => (num(p.value) == null ? null : `${x(i)},${y(num(p.value))}`)).filter(Boolean);
    if (path.length > 1) chart.append(svg("polyline", { class: "trace", points: path.join(" ") }));
    points.forEach((point, i) => {
      const value = num(point.value);
      if (value == null) return;
      const violated = (point.violations || []).length > 0;
      const group = svg("g", { class: ["chart-point", violated ? "violation" : "", point.censored ? "censored" : "",
        point.baseline ? "baseline" : ""].filter(Boolean).join(" ") });
      group.dataset.when = point.when;
      group.dataset.measured = String(point.measured);
      if (violated) group.dataset.violations = point.violations.join(",");
      group.append(svg("title", {}, pointTitle(series, point)));
      if (violated) group.append(svg("circle", { class: "ring", cx: x(i), cy: y(value), r: 8 }));
      group.append(svg("circle", { class: "dot", cx: x(i), cy: y(value), r: 4.5 }));
      chart.append(group);
    });
    return chart;
  }

  return { draw: drawControlChart };
};
