// The usage view: tokens and cost per day from GET /v1/usage (rows by day, provider and
// model), summed per day and drawn as an inline SVG bar chart, with the same figures in a table.

const SVG = "http://www.w3.org/2000/svg";
const MIN_WIDTH = 280; // the chart is drawn at the box's width, so its text stays readable
const HEIGHT = 180;
const PAD = { top: 18, right: 8, bottom: 28, left: 8 };

/** Rows of /v1/usage -> [{day, tasks, input_tokens, output_tokens, tokens, cost}] by day. */
export function perDay(items) {
  const days = new Map();
  for (const row of items) {
    const day = days.get(row.day)
      || { day: row.day, tasks: 0, input_tokens: 0, output_tokens: 0, cost: 0n };
    day.tasks += row.tasks;
    day.input_tokens += row.input_tokens;
    day.output_tokens += row.output_tokens;
    day.cost += costUnits(row.cost_usd);
    days.set(row.day, day);
  }
  return [...days.values()]
    .map((d) => ({ ...d, tokens: d.input_tokens + d.output_tokens }))
    .sort((a, b) => (a.day < b.day ? -1 : 1));
}

// Costs are decimal strings with at most 10 places: summed exactly in units of 1e-10 dollars.
const PLACES = 10;

function costUnits(text) {
  const [whole, fraction = ""] = String(text ?? "0").split(".");
  const places = fraction.padEnd(PLACES, "0").slice(0, PLACES);
  return BigInt(whole || "0") * 10n ** BigInt(PLACES) + BigInt(places);
}

export function formatCost(units) {
  const digits = units.toString().padStart(PLACES + 1, "0");
  const fraction = digits.slice(-PLACES).replace(/0+$/, "");
  return `$${digits.slice(0, -PLACES)}${fraction ? `.${fraction}` : ""}`;
}

function svg(name, attributes, text) {
  const el = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) el.setAttribute(key, String(value));
  if (text !== undefined) el.textContent = text;
  return el;
}

function chart(days, width) {
  const root = svg("svg", {
    viewBox: `0 0 ${width} ${HEIGHT}`, role: "img", class: "usage-chart",
    "aria-labelledby": "usage-chart-title",
  });
  root.append(svg("title", { id: "usage-chart-title" }, "Tokens per day"));
  const max = Math.max(1, ...days.map((d) => d.tokens));
  const plotW = width - PAD.left - PAD.right;
  const plotH = HEIGHT - PAD.top - PAD.bottom;
  const slot = plotW / Math.max(days.length, 1);
  const barW = Math.max(2, Math.min(48, slot * 0.7));
  root.append(svg("line", {
    x1: PAD.left, x2: width - PAD.right, y1: PAD.top + plotH, y2: PAD.top + plotH, class: "axis",
  }));
  const labelEvery = Math.ceil(days.length / Math.max(2, Math.floor(width / 60))); // no overlap
  days.forEach((d, i) => {
    const h = Math.max(1, (d.tokens / max) * plotH);
    const x = PAD.left + slot * i + (slot - barW) / 2;
    const bar = svg("rect", {
      x: x.toFixed(1), y: (PAD.top + plotH - h).toFixed(1), width: barW.toFixed(1),
      height: h.toFixed(1), class: "usage-bar", "data-day": d.day, "data-tokens": d.tokens,
    });
    bar.append(svg("title", {}, `${d.day}: ${d.tokens} tokens, ${formatCost(d.cost)}`));
    root.append(bar);
    const cx = (x + barW / 2).toFixed(1);
    if (slot >= 40) {
      const y = PAD.top + plotH - h - 4;
      root.append(svg("text", { x: cx, y, class: "value" }, String(d.tokens)));
    }
    if (i % labelEvery === 0) {
      root.append(svg("text", { x: cx, y: HEIGHT - 10, class: "day" }, d.day.slice(5)));
    }
  });
  return root;
}

const COLUMNS = ["day", "tasks", "input", "output", "tokens", "cost"];

function table(days) {
  const tbl = document.createElement("table");
  tbl.className = "usage-table";
  const head = tbl.createTHead().insertRow();
  ["Day", "Tasks", "Tokens in", "Tokens out", "Tokens", "Cost"].forEach((name, i) => {
    const th = document.createElement("th");
    th.scope = "col";
    th.textContent = name;
    th.dataset.col = COLUMNS[i];
    head.append(th);
  });
  const body = tbl.createTBody();
  for (const d of days) {
    const row = body.insertRow();
    row.dataset.day = d.day;
    const values = [d.day, d.tasks, d.input_tokens, d.output_tokens, d.tokens, formatCost(d.cost)];
    values.forEach((value, i) => {
      const cell = row.insertCell();
      cell.textContent = String(value);
      cell.dataset.col = COLUMNS[i];
    });
  }
  return tbl;
}

/** Fetch GET /v1/usage (the last 30 days) with api(path) and draw it. */
export async function showUsage(api) {
  try {
    renderUsage((await api("/v1/usage")).items);
  } catch (err) {
    document.getElementById("usage").textContent = `Could not load usage (${err.message}).`;
  }
}

/** Draw /v1/usage's items into #usage. */
export function renderUsage(items) {
  const box = document.getElementById("usage");
  const days = perDay(items);
  if (!days.length) {
    const p = document.createElement("p");
    p.className = "muted";
    p.textContent = "No usage in the last 30 days.";
    box.replaceChildren(p);
    return;
  }
  const total = days.reduce((sum, d) => sum + d.tokens, 0);
  const cost = days.reduce((sum, d) => sum + d.cost, 0n);
  const summary = document.createElement("p");
  summary.className = "muted";
  summary.id = "usage-total";
  summary.textContent = `${total} tokens, ${formatCost(cost)} over ${days.length} day(s)`;
  const scroll = document.createElement("div");
  scroll.className = "table-scroll"; // a narrow screen scrolls the table, not the page
  scroll.append(table(days));
  const width = Math.max(MIN_WIDTH, Math.round(box.clientWidth) || 600);
  box.replaceChildren(summary, chart(days, width), scroll);
}
