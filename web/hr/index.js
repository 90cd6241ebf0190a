// Corporate HR (R12): usage and prevention figures of the company's own staff, exports and the
// account manager. Every number comes from the server already suppressed (R12.5); this page only
// shows it: a withheld cell is "< k", charts are the server's SVG (the same ones the PDF prints),
// each beside its data table.
import { html } from "../app/html.js";
import { useEffect, useState } from "preact/hooks";
import { blobUrl, get } from "../app/api.js";
import { Card, ErrorBox, Notice, Spinner, StaffLogin, newId } from "../app/ui.js";
import { formatMoney, formatNumber, t } from "../app/i18n.js";
import "../app/terms.js";
import messages from "./messages.js";

const shown = (value, k) => (value === null || value === undefined ? `< ${k}` : formatNumber(value));

function Chart({ svg, table, k, dims }) {
  const id = newId("chart");
  return html`<figure class="hr-chart">
    <div class="hr-svg" dangerouslySetInnerHTML=${{ __html: svg }}></div>
    ${table && html`<details>
      <summary>${t("h.data")}</summary>
      <div class="table-wrap"><table aria-describedby=${id}>
        <caption id=${id} class="visually-hidden">${t("h.data")}</caption>
        <thead><tr>${dims.map((d) => html`<th scope="col">${d}</th>`)}<th scope="col">${t("h.value")}</th></tr></thead>
        <tbody>${table.rows.map((r) => html`<tr>${dims.map((d) => html`<td>${r.values[d]}</td>`)}<td>${shown(r.value, k)}</td></tr>`)}</tbody>
      </table></div>
    </details>`}
  </figure>`;
}

function Figures({ figures, total, k }) {
  if (!figures) return null;
  const items = [
    ["h.consultations", shown(total, k)],
    ["h.persons", shown(figures.persons_consulting, k)],
    ["h.waitP50", shown(figures.wait_p50_minutes, k)],
    ["h.waitP90", shown(figures.wait_p90_minutes, k)],
    ["h.referrals", shown(figures.referrals, k)],
    ["h.letters", shown(figures.letters_of_guarantee, k)],
    ["h.staff", shown(figures.staff, k)],
    ["h.registry", shown(figures.registry_persons, k)],
    ["h.dispatcher", shown(figures.dispatcher_persons, k)],
    ["h.allowance", formatNumber(figures.telemedicine_allowance_pool)],
    ["h.cost", figures.cost_estimate === null ? `< ${k}` : formatMoney(figures.cost_estimate)],
    ["h.premium", formatMoney(figures.premium_paid)],
  ];
  return html`<dl class="hr-figures">${items.map(([key, value]) => html`<div class="hr-figure"><dt>${t(key)}</dt><dd>${value}</dd></div>`)}</dl>`;
}

function Download({ path, name, label }) {
  const [error, setError] = useState(null);
  const fetchFile = async () => {
    setError(null);
    try {
      const url = await blobUrl(path);
      const link = document.createElement("a");
      link.href = url;
      link.download = name;
      document.body.appendChild(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
    } catch (err) {
      setError(err);
    }
  };
  return html`<span><button type="button" class="btn btn-ghost" onClick=${fetchFile}>${label}</button><${ErrorBox} error=${error} /></span>`;
}

function Usage({ period, filter, k }) {
  const [view, setView] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => {
    setView(null);
    setError(null);
    get("/api/hr/usage", { period, ...filter }).then(setView, setError);
  }, [period, JSON.stringify(filter)]);
  if (error) return html`<${ErrorBox} error=${error} />`;
  if (!view) return html`<${Spinner} />`;
  const tables = Object.fromEntries(view.tables.map((tbl) => [tbl.name, tbl]));
  const total = tables.consultations && tables.consultations.rows[0].value;
  const charts = [
    ["by_channel", "consultations_by_channel", ["channel"]],
    ["by_week", "consultations_by_week", ["week"]],
    ["by_specialty", "consultations_by_specialty", ["specialty"]],
    ["by_department", "consultations_by_department", ["department"]],
    ["by_age_band", "consultations_by_age_band", ["age_band"]],
  ].filter(([key]) => view.charts[key]);
  return html`<div class="stack">
    ${period.includes("W") && html`<${Notice}>${t("h.weekNote")}</${Notice}>`}
    ${view.filter && html`<${Notice}>${t("h.sliceNote")}</${Notice}>`}
    <${Figures} figures=${view.figures} total=${total} k=${k} />
    <div class="grid hr-grid">${charts.map(([key, name, dims]) => html`<${Chart} svg=${view.charts[key]} table=${tables[name]} dims=${dims} k=${k} />`)}</div>
    ${(view.filter || !view.figures) && view.tables.map((tbl) => html`<${Card} title=${tbl.name} headingLevel=${3}>
      <div class="table-wrap"><table>
        <thead><tr>${tbl.dims.map((d) => html`<th scope="col">${d}</th>`)}<th scope="col">${t("h.value")}</th></tr></thead>
        <tbody>${tbl.rows.map((r) => html`<tr>${tbl.dims.map((d) => html`<td>${r.values[d]}</td>`)}<td>${shown(r.value, k)}</td></tr>`)}</tbody>
      </table></div>
    </${Card}>`)}
  </div>`;
}

function Health({ period, k }) {
  const [view, setView] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => {
    setView(null);
    setError(null);
    get("/api/hr/health", { period }).then(setView, setError);
  }, [period]);
  if (error) return html`<${ErrorBox} error=${error} />`;
  if (!view) return html`<${Spinner} />`;
  const rows = view.prevention_needs.rows.filter((r) => r.value !== null);
  const withheld = view.prevention_needs.rows.length - rows.length;
  return html`<div class="stack">
    <div class="grid hr-grid">
      <${Chart} svg=${view.charts.by_chapter} table=${view.diagnoses_by_chapter} dims=${["chapter"]} k=${k} />
      <${Chart} svg=${view.charts.trend} />
    </div>
    <${Card} title=${t("h.needs")} headingLevel=${3}>
      <div class="table-wrap"><table>
        <thead><tr><th scope="col">${t("h.department")}</th><th scope="col">${t("h.ageBand")}</th><th scope="col">${t("h.chapter")}</th><th scope="col">${t("h.value")}</th></tr></thead>
        <tbody>${rows.map((r) => html`<tr><td>${r.values.department}</td><td>${r.values.age_band}</td><td>${r.values.chapter} ${view.chapter_titles[r.values.chapter]}</td><td>${formatNumber(r.value)}</td></tr>`)}</tbody>
      </table></div>
      <p class="muted small">${t("h.withheld", { n: withheld, k })}</p>
    </${Card}>
  </div>`;
}

function Dashboard() {
  const [periods, setPeriods] = useState(null);
  const [manager, setManager] = useState(null);
  const [error, setError] = useState(null);
  const [period, setPeriod] = useState("");
  const [tab, setTab] = useState("usage");
  const [slice, setSlice] = useState("");
  const [departments, setDepartments] = useState([]);
  useEffect(() => {
    get("/api/hr/periods").then((p) => {
      setPeriods(p);
      if (p.months.length) setPeriod(p.months[0]);
    }, setError);
    get("/api/hr/account-manager").then(setManager, () => {});
  }, []);
  useEffect(() => {
    if (!period || period.includes("W")) return;
    get("/api/hr/usage", { period }).then((view) => {
      const table = view.tables.find((tbl) => tbl.name === "staff_by_department");
      setDepartments(table ? table.rows.map((r) => r.values.department) : []);
    }, () => setDepartments([]));
  }, [period]);
  if (error) return html`<${ErrorBox} error=${error} />`;
  if (!periods) return html`<${Spinner} />`;
  const k = periods.min_cell;
  if (!periods.months.length) return html`<${Notice}>${t("h.noPeriods")}</${Notice}>`;
  const filter = slice ? Object.fromEntries([slice.split(":")]) : {};
  const periodId = "hr-period";
  const sliceId = "hr-slice";
  const isWeek = period.includes("W");
  return html`<div class="stack">
    <p class="muted">${t("h.secrecy", { k })}</p>
    <div class="hr-controls">
      <div class="field"><label for=${periodId}>${t("h.period")}</label>
        <select id=${periodId} value=${period} onChange=${(e) => { setPeriod(e.target.value); setSlice(""); }}>
          <optgroup label=${t("h.month")}>${periods.months.map((m) => html`<option value=${m}>${m}</option>`)}</optgroup>
          <optgroup label=${t("h.week")}>${periods.weeks.map((w) => html`<option value=${w}>${w}</option>`)}</optgroup>
        </select></div>
      ${!isWeek && tab === "usage" && html`<div class="field"><label for=${sliceId}>${t("h.slice")}</label>
        <select id=${sliceId} value=${slice} onChange=${(e) => setSlice(e.target.value)}>
          <option value="">${t("h.all")}</option>
          <optgroup label=${t("h.department")}>${departments.map((d) => html`<option value=${"department:" + d}>${d}</option>`)}</optgroup>
          <optgroup label=${t("h.ageBand")}>${["<25", "25-34", "35-44", "45-54", "55-64", "65+"].map((b) => html`<option value=${"age_band:" + b}>${b}</option>`)}</optgroup>
        </select></div>`}
      <div class="hr-tabs" role="group" aria-label=${t("h.title")}>
        <button type="button" class="btn btn-ghost" aria-pressed=${tab === "usage"} onClick=${() => setTab("usage")}>${t("h.usage")}</button>
        <button type="button" class="btn btn-ghost" aria-pressed=${tab === "health"} disabled=${isWeek} onClick=${() => setTab("health")}>${t("h.health")}</button>
      </div>
    </div>
    ${tab === "health" && !isWeek ? html`<${Health} period=${period} k=${k} />` : html`<${Usage} period=${period} filter=${filter} k=${k} />`}
    <${Card} title=${t("h.downloads")} headingLevel=${2}>
      <div class="hr-downloads">
        <${Download} path=${"/api/hr/usage.csv?period=" + encodeURIComponent(period)} name=${`usage-${period}.csv`} label=${t("h.csvUsage")} />
        ${!isWeek && html`<${Download} path=${"/api/hr/health.csv?period=" + period} name=${`health-${period}.csv`} label=${t("h.csvHealth")} />`}
        ${!isWeek && html`<${Download} path=${"/api/hr/passport.pdf?period=" + period} name=${`health-passport-${period}.pdf`} label=${t("h.passport")} />`}
      </div>
    </${Card}>
    <${Card} title=${t("h.manager")} headingLevel=${2}>
      <p>${manager && manager.account_manager ? manager.account_manager : t("h.noManager")}</p>
    </${Card}>
  </div>`;
}

function Page({ current }) {
  if (!current) return html`<${StaffLogin} title=${t("h.login")} />`;
  return html`<div class="stack"><h1>${t("h.title")}</h1><${Dashboard} /></div>`;
}

export default { messages, Page };
