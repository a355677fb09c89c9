// segmenter UI: fetches the JSON endpoints of this server (nothing else) and redraws every `data-refresh` s.
"use strict";
(function () {
  const body = document.body;
  const page = body.dataset.page;
  const refresh = Math.max(1, parseFloat(body.dataset.refresh || "10")) * 1000;
  const charts = new Map();
  const PALETTE = ["#2f6fdf", "#e8833a", "#3aa56b", "#d64550", "#8c62c7", "#8c6d31", "#d35fb7", "#7f7f7f",
    "#17becf", "#bcbd22"];

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null) continue;
      if (k === "class") node.className = v; else if (k === "text") node.textContent = v;
      else node.setAttribute(k, v);
    }
    for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    return node;
  }
  const fmt = (n) => Number(n).toLocaleString("en-US");
  const shown = (v) => (v === null || v === undefined ? "—" : String(v));

  function chart(id, node) {
    let c = charts.get(id);
    if (!c || c.getDom() !== node) { c = echarts.init(node, null, { renderer: "canvas" }); charts.set(id, c); }
    return c;
  }
  window.addEventListener("resize", () => charts.forEach((c) => c.resize()));

  function status(text, bad) {
    const s = document.getElementById("status");
    s.textContent = text; s.className = bad ? "bad" : "";
  }
  async function getJSON(url) {
    const response = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
    const data = await response.json().catch(() => ({}));
    if (!response.ok) { const e = new Error(data.detail || data.error || response.statusText); e.status = response.status; throw e; }
    return data;
  }
  function loop(draw) {
    const tick = async () => {
      try { await draw(); status("updated " + new Date().toLocaleTimeString(), false); body.dataset.loaded = "1"; }
      catch (e) { status("error: " + e.message, true); body.dataset.loaded = "error"; }
      setTimeout(tick, refresh);
    };
    tick();
  }

  // ------------------------------------------------------------------------------------------ overview
  function overview() {
    const params = new URLSearchParams(location.search);
    const days = params.get("days") || "30";
    const end = params.get("end") || "";
    document.getElementById("days").value = days;
    document.getElementById("end").value = end;
    const container = document.getElementById("dimensions");
    loop(async () => {
      const q = new URLSearchParams({ days }); if (end) q.set("end", end);
      const data = await getJSON("/api/overview?" + q);
      if (!end && data.days.length) document.getElementById("end").value = data.days[data.days.length - 1];
      for (const d of data.dimensions) drawDimension(container, d, data.days);
      for (const old of container.querySelectorAll("[data-dimension]"))
        if (!data.dimensions.some((d) => d.dimension === old.dataset.dimension)) old.remove();
      if (!data.dimensions.length) container.replaceChildren(el("p", { class: "card" }, "No tier counts under this prefix yet."));
      document.getElementById("latest-day").textContent = data.latest_day;
      const tbody = document.querySelector("#top tbody");
      tbody.replaceChildren(...data.top_transitions.map((m) => el("tr", { "data-dimension": m.dimension, "data-from": m.from || "", "data-to": m.to },
        el("td", {}, m.dimension), el("td", {}, m.from || "(first classification)"), el("td", {}, m.to),
        el("td", { class: "num count" }, fmt(m.count)),
        el("td", { class: "reasons" }, Object.entries(m.reasons || {}).map(([r, n]) => `${r} ${n}/${m.reasons_sampled}`).join(", ") || `none in a sample of ${m.reasons_sampled}`))));
      if (!data.top_transitions.length) tbody.append(el("tr", {}, el("td", { colspan: 5 }, "No tier changes that day.")));
    });
  }

  function drawDimension(container, d, days) {
    let card = container.querySelector(`[data-dimension="${CSS.escape(d.dimension)}"]`);
    if (!card) {
      card = el("section", { class: "card dimension", "data-dimension": d.dimension },
        el("h2", {}, d.dimension, el("span", { class: "hint total" }, "")),
        el("div", { class: "grid" },
          el("div", {}, el("h3", {}, "Now"), el("div", { class: "chart dist" }),
            el("table", { class: "dist-table", id: "dist-" + d.dimension }, el("thead", {}, el("tr", {}, el("th", {}, "tier"), el("th", { class: "num" }, "customers"), el("th", { class: "num" }, "share"))), el("tbody"))),
          el("div", {}, el("h3", {}, "Size per day"), el("div", { class: "chart sizes" })),
          el("div", {}, el("h3", {}, "Flows over the range"), el("div", { class: "chart sankey" }))));
      container.append(card);
    }
    card.querySelector(".total").textContent = ` ${fmt(d.total)} customers`;
    const colour = (t) => PALETTE[d.tiers.indexOf(t) % PALETTE.length];
    card.querySelector(".dist-table tbody").replaceChildren(...d.tiers.map((t) => el("tr", { "data-tier": t },
      el("td", {}, el("span", { class: "dot", style: `background:${colour(t)}` }), t),
      el("td", { class: "num count" }, fmt(d.counts[t])),
      el("td", { class: "num" }, d.total ? (100 * d.counts[t] / d.total).toFixed(1) + "%" : "—"))));
    chart(d.dimension + "/dist", card.querySelector(".dist")).setOption({
      animation: false, grid: { left: 90, right: 20, top: 10, bottom: 20 }, tooltip: {},
      xAxis: { type: "value" }, yAxis: { type: "category", data: [...d.tiers].reverse() },
      series: [{ type: "bar", data: [...d.tiers].reverse().map((t) => ({ value: d.counts[t], itemStyle: { color: colour(t) } })) }],
    });
    chart(d.dimension + "/sizes", card.querySelector(".sizes")).setOption({
      animation: false, tooltip: { trigger: "axis" }, legend: { type: "scroll", top: 0 },
      grid: { left: 60, right: 20, top: 30, bottom: 30 },
      xAxis: { type: "category", data: days }, yAxis: { type: "value" },
      series: d.tiers.map((t) => ({ name: t, type: "line", showSymbol: false, data: d.sizes[t], itemStyle: { color: colour(t) } })),
    }, true);
    // A bipartite Sankey (tier before -> tier after): ECharts' Sankey needs an acyclic graph.
    const nodes = new Map();
    const node = (name, t) => { if (!nodes.has(name)) nodes.set(name, { name, itemStyle: { color: t ? colour(t) : "#bbb" } }); return name; };
    const links = d.flows.map((f) => ({ source: node((f.from || "(new)") + " ›", f.from), target: node("› " + f.to, f.to), value: f.count }));
    chart(d.dimension + "/sankey", card.querySelector(".sankey")).setOption({
      animation: false, tooltip: { trigger: "item" },
      series: [{ type: "sankey", left: 10, right: 120, top: 10, bottom: 10, nodeGap: 6, emphasis: { focus: "adjacency" },
        data: [...nodes.values()], links, lineStyle: { color: "gradient", opacity: 0.4 } }],
    }, true);
  }

  // ------------------------------------------------------------------------------------------ RFM
  function rfm() {
    loop(async () => {
      const data = await getJSON("/api/rfm");
      document.getElementById("rfm-dimension").textContent = shown(data.dimension);
      document.getElementById("rfm-sampled").textContent = fmt(data.sampled);
      document.getElementById("rfm-customers").textContent = fmt(data.customers);
      document.getElementById("rfm-no-purchase").textContent = fmt(data.no_purchase);
      const values = data.cells.map((c) => c.mean_monetary);
      chart("rfm", document.getElementById("rfm-chart")).setOption({
        animation: false,
        tooltip: { formatter: (p) => `recency ${data.recency_bins[p.value[0]]} d, frequency ${data.frequency_bins[p.value[1]]}<br>${fmt(p.value[3])} customers, mean monetary ${p.value[2].toFixed(2)}` },
        grid: { left: 70, right: 30, top: 20, bottom: 90 },
        xAxis: { type: "category", name: "recency (days)", nameLocation: "middle", nameGap: 30, data: data.recency_bins, splitArea: { show: true } },
        yAxis: { type: "category", name: "frequency", data: data.frequency_bins, splitArea: { show: true } },
        visualMap: { min: 0, max: Math.max(1, ...values), calculable: true, orient: "horizontal", left: "center", bottom: 5, text: ["mean monetary", ""] },
        series: [{ type: "heatmap", data: data.cells.map((c) => [c.recency, c.frequency, c.mean_monetary, c.customers]),
          label: { show: true, formatter: (p) => fmt(p.value[3]) } }],
      }, true);
      document.querySelector("#rfm-cells tbody").replaceChildren(...data.cells.map((c) => el("tr", {},
        el("td", {}, data.recency_bins[c.recency]), el("td", {}, data.frequency_bins[c.frequency]),
        el("td", { class: "num" }, fmt(c.customers)), el("td", { class: "num" }, c.mean_monetary.toFixed(2)))));
    });
  }

  // ------------------------------------------------------------------------------------------ customer
  function failureText(f) {
    const values = Object.entries(f.values || {}).map(([k, v]) => `${k} = ${shown(v)}`).join(", ");
    return f.condition + (values ? `  (${values})` : "");
  }
  function customer() {
    const id = body.dataset.customer;
    if (!id) { status("search a customer by id", false); body.dataset.loaded = "1"; return; }
    loop(async () => {
      let c;
      try { c = await getJSON("/api/customer/" + encodeURIComponent(id)); }
      catch (e) {
        if (e.status !== 404) throw e;
        const missing = document.getElementById("customer-missing");
        missing.hidden = false; missing.textContent = e.message;
        document.getElementById("customer-meta").textContent = "";
        return;
      }
      document.getElementById("customer-meta").textContent =
        `as of ${c.as_of} · record version ${c.version} · rules ${String(c.rules_version).slice(0, 12)} · ` +
        `first purchase ${shown(c.first_purchase_at)} · last purchase ${shown(c.last_purchase_at)}`;
      const byDim = new Map(c.explanations.map((x) => [x.dimension, x]));
      document.getElementById("tiers").replaceChildren(...Object.entries(c.tiers).map(([dim, tier]) => {
        const x = byDim.get(dim);
        const why = el("div", { class: "why" });
        if (!x) why.append(el("p", { class: "hint" }, c.rules_known ? "no explanation" : "the text of this rules version is not in Redis: no explanation"));
        else if (x.unavailable.length) why.append(el("p", { class: "hint" }, `explanation unavailable: ${x.unavailable.join(", ")} is not in the Redis record (its field holds the tier); see \`segmenter explain\``));
        else {
          why.append(el("p", {}, "✔ ", el("code", {}, failureText(x))));
          for (const f of x.failed) why.append(el("p", { class: "failed" }, `✘ ${f.tier}: `, el("code", {}, failureText(f.failed))));
        }
        return el("div", { class: "tier", "data-dimension": dim },
          el("h4", {}, dim, " ", el("span", { class: "badge" }, shown(tier))), why);
      }));
      const rows = (obj, unavailable) => Object.entries(obj).map(([k, v]) => el("tr", { "data-name": k }, el("th", {}, k),
        el("td", { class: "num" }, unavailable.includes(k) ? "unavailable" : shown(v))));
      document.querySelector("#features tbody").replaceChildren(...rows(c.features, c.unavailable_features));
      const attrs = rows(c.attributes, []);
      document.querySelector("#attributes tbody").replaceChildren(...(attrs.length ? attrs : [el("tr", {}, el("td", {}, "none"))]));
      document.getElementById("history").replaceChildren(...c.history.map((h) => el("li", { "data-dimension": h.dimension, "data-seq": h.seq },
        el("time", {}, h.at), " ", el("b", {}, h.dimension), `: ${h.from || "(first)"} → ${h.to}`, el("span", { class: "hint" }, ` ${h.reason}${h.when ? " · " + h.when : ""}`))));
      const dims = [...new Set(c.history.map((h) => h.dimension))];
      chart("timeline", document.getElementById("timeline")).setOption({
        animation: false, grid: { left: 100, right: 30, top: 10, bottom: 30 },
        tooltip: { formatter: (p) => `${p.value[0]}<br>${p.name}` },
        xAxis: { type: "time" }, yAxis: { type: "category", data: dims },
        series: [{ type: "scatter", symbolSize: 12, data: c.history.map((h) => ({ value: [h.at, h.dimension], name: `${h.from || "(first)"} → ${h.to} (${h.reason})` })),
          itemStyle: { color: "#2f6fdf" } }],
      }, true);
    });
  }

  ({ overview, rfm, customer })[page]?.();
})();
