// The admin's pages: roster gaps (R11.2 alerts: every hour without a general practitioner) and
// the duty roster of the coming days.
import { html } from "../app/html.js";
import { useEffect, useState } from "preact/hooks";
import { get } from "../app/api.js";
import { Badge, Card, ErrorBox, Notice, Spinner, StaffLogin } from "../app/ui.js";
import { formatDateTime, formatTime, t } from "../app/i18n.js";
import "../app/terms.js";
import messages from "./messages.js";

function Gaps() {
  const [coverage, setCoverage] = useState(null);
  const [alerts, setAlerts] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => {
    get("/api/roster/coverage", { weeks: 2 }).then(setCoverage, setError);
    get("/api/admin/roster-alerts").then(setAlerts, setError);
  }, []);
  return html`<${Card} title=${t("a.gaps")}>
    <${ErrorBox} error=${error} />
    ${alerts && (alerts.length === 0
      ? html`<${Notice}>${t("a.noAlerts")}</${Notice}>`
      : html`<ul class="list">${alerts.map((a) => html`<li class="gap-hour"><span class="rule">R11.2</span> ${formatDateTime(a.gap_start)} – ${formatDateTime(a.gap_end)} · ${t("spec." + a.specialty)}</li>`)}</ul>`)}
    ${!coverage ? html`<${Spinner} />` : html`<div class="table-wrap"><table>
      <caption class="visually-hidden">${t("a.coverageCaption")}</caption>
      <thead><tr><th scope="col">${t("a.specialty")}</th><th scope="col">${t("a.covered")}</th><th scope="col">${t("a.gapHours")}</th><th scope="col">${t("a.state")}</th></tr></thead>
      <tbody>${coverage.specialties.map((s) => html`<tr>
        <td>${t("spec." + s.specialty)}${s.required_24_7 ? html` <${Badge}>24/7</${Badge}>` : ""}</td>
        <td>${s.covered_hours}</td><td>${s.gap_hours}</td>
        <td>${s.alert ? html`<${Badge} kind="err">R11.2 ${t("a.alert")}</${Badge}>` : s.required_24_7 ? html`<${Badge} kind="ok">${t("a.ok")}</${Badge}>` : html`<span class="muted small">${t("a.hours")}</span>`}</td>
      </tr>`)}</tbody>
    </table></div>`}
  </${Card}>`;
}

function Roster() {
  const [shifts, setShifts] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => {
    const from = new Date();
    const to = new Date(from.getTime() + 2 * 86400_000);
    get("/api/roster", { from: from.toISOString(), to: to.toISOString() }).then(setShifts, setError);
  }, []);
  return html`<${Card} title=${t("a.roster")}>
    <${ErrorBox} error=${error} />
    ${!shifts ? !error && html`<${Spinner} />` : html`<div class="table-wrap"><table>
      <caption class="visually-hidden">${t("a.roster")}</caption>
      <thead><tr><th scope="col">${t("a.start")}</th><th scope="col">${t("a.end")}</th><th scope="col">${t("a.doctor")}</th><th scope="col">${t("a.specialty")}</th></tr></thead>
      <tbody>${shifts.map((s) => html`<tr><td>${formatDateTime(s.starts_at)}</td><td>${formatDateTime(s.ends_at)}</td><td>${s.doctor_name} <span class="muted small">${s.doctor_username}</span></td><td>${t("spec." + s.specialty)}</td></tr>`)}</tbody>
    </table></div>`}
  </${Card}>`;
}

function Page({ current }) {
  if (!current) return html`<${StaffLogin} title=${t("a.login")} />`;
  return html`<div class="stack"><h1>${t("a.title")}</h1><${Gaps} /><${Roster} /></div>`;
}

export default { messages, Page };
