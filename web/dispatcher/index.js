// The dispatcher's console: the live queue of requests and referrals, find a person, their
// coverage, allowed clinics, insured events, letters of guarantee (issue, extend, close), visits,
// and every approval decision explained with its rule ids.
import { html } from "../app/html.js";
import { useEffect, useState } from "preact/hooks";
import { api, get, post } from "../app/api.js";
import { subscribe } from "../app/ws.js";
import { Badge, Card, ErrorBox, Field, Notice, Reasons, Spinner, StaffLogin, useAction } from "../app/ui.js";
import { formatDate, formatDateTime, t } from "../app/i18n.js";
import { href, route } from "../app/router.js";
import { useStore } from "../app/store.js";
import "../app/terms.js";
import messages from "./messages.js";

const COMPONENTS = ["outpatient", "dental", "ambulance", "inpatient", "telemedicine"];
const splitList = (s) => s.split(",").map((x) => x.trim()).filter(Boolean);

function Queue() {
  const [status, setStatus] = useState("unfinished");
  const [items, setItems] = useState(null);
  const [error, setError] = useState(null);
  const load = () => get("/api/dispatch/requests", { status }).then(setItems, setError);
  useEffect(() => {
    load();
    const stop = subscribe("notifications.subscribe", () => ({}), () => load());
    return stop;
  }, [status]);
  const take = async (id) => {
    try {
      await post(`/api/dispatch/requests/${id}/take`, {});
    } catch (err) {
      setError(err);
    }
    load();
  };
  return html`<${Card} title=${t("x.queue")}>
    <div class="field">
      <label for="queue-status">${t("x.show")}</label>
      <select id="queue-status" value=${status} onChange=${(e) => setStatus(e.target.value)}>
        ${["unfinished", "open", "in_progress", "done", "cancelled"].map((s) => html`<option value=${s}>${t("x.status." + s)}</option>`)}
      </select>
    </div>
    <${ErrorBox} error=${error} />
    ${!items ? html`<${Spinner} />` : items.length === 0 ? html`<p class="muted">${t("x.empty")}</p>` : html`<ul class="list" aria-live="polite" data-testid="dispatch-queue">
      ${items.map((r) => html`<li>
        <div class="card-head">
          <a href=${href(`/dispatcher/person/${r.insured_person_id}`)}><strong>${r.person_name}</strong></a>
          <span><${Badge} kind=${r.source === "consultation_referral" || r.source === "call_back" ? "wait" : "neutral"}>${t("x.source." + r.source)}</${Badge}>
            <${Badge} kind=${r.status === "open" ? "err" : "neutral"}>${t("x.status." + r.status)}</${Badge}></span>
        </div>
        ${r.source === "call_back" && html`<p class="alert alert-info" data-testid="call-back">${t("x.callBackHint", { id: r.consultation_id })}</p>`}
        <p class="prewrap">${r.complaints}</p>
        <p class="muted small">${r.person_city} · ${formatDateTime(r.created_at)}${r.requested_specialty ? " · " + t("spec." + r.requested_specialty) : ""}${r.requested_services.length ? " · " + r.requested_services.join(", ") : ""}</p>
        ${r.status === "open" && html`<button type="button" class="btn btn-ghost" onClick=${() => take(r.id)}>${t("x.take")}</button>`}
      </li>`)}
    </ul>`}
  </${Card}>`;
}

function FindPerson() {
  const [policy, setPolicy] = useState("");
  const [name, setName] = useState("");
  const [found, setFound] = useState(null);
  const action = useAction(async () => setFound(await get("/api/dispatch/persons", { policy_number: policy.trim(), name: name.trim() })));
  return html`<${Card} title=${t("x.find")}>
    <form class="stack" onSubmit=${(e) => { e.preventDefault(); action.run(); }}>
      <div class="grid">
        <${Field} label=${t("x.policy")} id="find-policy"><input id="find-policy" value=${policy} onInput=${(e) => setPolicy(e.target.value)} /></${Field}>
        <${Field} label=${t("x.name")} id="find-name"><input id="find-name" value=${name} onInput=${(e) => setName(e.target.value)} /></${Field}>
      </div>
      <${ErrorBox} error=${action.error} />
      <button class="btn btn-primary" type="submit" disabled=${action.busy}>${t("x.search")}</button>
    </form>
    ${found && (found.length === 0 ? html`<p class="muted">${t("x.nobody")}</p>` : html`<ul class="list">
      ${found.slice(0, 30).map((p) => html`<li><a href=${href("/dispatcher/person/" + p.id)}>${p.full_name}</a>
        <span class="muted small"> · ${formatDate(p.birth_date)} · ${p.city} · ${p.policy_number} · ${t("service." + p.service_type)}</span></li>`)}
    </ul>`)}
  </${Card}>`;
}

function Decision({ result }) {
  if (!result) return null;
  return html`<div class=${"alert " + (result.ok ? "alert-info" : "alert-warn")} role="status">
    <strong>${result.title}</strong>
    <${Reasons} reasons=${result.reasons} />
  </div>`;
}

function useDecision() {
  const [decision, setDecision] = useState(null);
  const fail = (err) => setDecision({ ok: false, title: err.message, reasons: err.reasons.length ? err.reasons : (err.rules || []).map((r) => ({ rule: r, message: "" })) });
  return { decision, setDecision, fail };
}

function EventForm({ personId, onDone }) {
  const [component, setComponent] = useState("outpatient");
  const [complaints, setComplaints] = useState("");
  const d = useDecision();
  const submit = async (e) => {
    e.preventDefault();
    try {
      const ev = await post("/api/dispatch/events", { insured_person_id: Number(personId), component, complaints: complaints.trim() });
      d.setDecision({ ok: ev.covered, title: ev.covered ? t("x.eventOpen") : t("x.eventRejected"), reasons: ev.reasons });
      onDone();
    } catch (err) {
      d.fail(err);
    }
  };
  return html`<form class="stack" onSubmit=${submit}>
    <h3>${t("x.newEvent")}</h3>
    <div class="grid">
      <${Field} label=${t("x.component")} id="ev-component">
        <select id="ev-component" value=${component} onChange=${(e) => setComponent(e.target.value)}>
          ${COMPONENTS.map((c) => html`<option value=${c}>${t("x.comp." + c)}</option>`)}
        </select>
      </${Field}>
      <${Field} label=${t("x.complaints")} id="ev-complaints">
        <input id="ev-complaints" required value=${complaints} onInput=${(e) => setComplaints(e.target.value)} />
      </${Field}>
    </div>
    <button class="btn btn-primary" type="submit">${t("x.classify")}</button>
    <${Decision} result=${d.decision} />
  </form>`;
}

function LetterForm({ event, clinics, onDone }) {
  const [clinicId, setClinicId] = useState(clinics[0] ? String(clinics[0].clinic.id) : "");
  const [services, setServices] = useState("");
  const d = useDecision();
  const id = `letter-${event.id}`;
  const submit = async (e) => {
    e.preventDefault();
    try {
      const letter = await post(`/api/dispatch/events/${event.id}/letters`, { clinic_id: Number(clinicId), services: splitList(services) });
      d.setDecision({ ok: true, title: t("x.letterIssued", { number: letter.letter ? letter.letter.number : letter.number || "" }), reasons: letter.reasons || [] });
      onDone();
    } catch (err) {
      d.fail(err);
    }
  };
  return html`<form class="stack" onSubmit=${submit}>
    <div class="grid">
      <${Field} label=${t("x.clinic")} id=${id + "-clinic"}>
        <select id=${id + "-clinic"} value=${clinicId} onChange=${(e) => setClinicId(e.target.value)}>
          ${clinics.map((c) => html`<option value=${c.clinic.id}>${c.clinic.name} (${c.clinic.city})${c.needs_pass_photo ? " · " + t("x.passPhoto") : ""}</option>`)}
        </select>
      </${Field}>
      <${Field} label=${t("x.services")} id=${id + "-services"}>
        <input id=${id + "-services"} required value=${services} onInput=${(e) => setServices(e.target.value)} />
      </${Field}>
    </div>
    <button class="btn btn-primary" type="submit">${t("x.issueLetter")}</button>
    <${Decision} result=${d.decision} />
  </form>`;
}

function VisitForm({ letter, onDone }) {
  const [doctor, setDoctor] = useState("");
  const [when, setWhen] = useState("");
  const d = useDecision();
  const id = `visit-${letter.id}`;
  const submit = async (e) => {
    e.preventDefault();
    try {
      const local = new Date(when);
      const offset = -local.getTimezoneOffset();
      const sign = offset >= 0 ? "+" : "-";
      const pad = (n) => String(Math.floor(Math.abs(n))).padStart(2, "0");
      const scheduled = `${when}:00${sign}${pad(offset / 60)}:${pad(offset % 60)}`;
      const visit = await post(`/api/dispatch/letters/${letter.id}/visits`, { doctor_name: doctor.trim(), scheduled_at: scheduled, services: letter.services });
      d.setDecision({ ok: true, title: visit.text || t("x.visitBooked"), reasons: [] });
      onDone();
    } catch (err) {
      d.fail(err);
    }
  };
  return html`<form class="row" onSubmit=${submit}>
    <${Field} label=${t("x.visitDoctor")} id=${id + "-doctor"}><input id=${id + "-doctor"} required value=${doctor} onInput=${(e) => setDoctor(e.target.value)} /></${Field}>
    <${Field} label=${t("x.visitWhen")} id=${id + "-when"}><input id=${id + "-when"} type="datetime-local" required value=${when} onInput=${(e) => setWhen(e.target.value)} /></${Field}>
    <button class="btn btn-ghost" type="submit">${t("x.book")}</button>
    <${Decision} result=${d.decision} />
  </form>`;
}

function ApprovalCheck({ personId, clinics }) {
  const [clinicId, setClinicId] = useState(clinics[0] ? String(clinics[0].clinic.id) : "");
  const [services, setServices] = useState("");
  const [complaints, setComplaints] = useState("");
  const d = useDecision();
  const submit = async (e) => {
    e.preventDefault();
    try {
      const body = { insured_person_id: Number(personId), clinic_id: Number(clinicId), services: splitList(services) };
      if (complaints.trim()) body.complaints = complaints.trim();
      const r = await post("/api/dispatch/approval-check", body);
      d.setDecision({ ok: !r.needs_approval, title: r.needs_approval ? t("x.needsApproval") : t("x.noApproval"), reasons: r.reasons });
    } catch (err) {
      d.fail(err);
    }
  };
  return html`<${Card} title=${t("x.approval")}>
    <form class="stack" onSubmit=${submit}>
      <div class="grid">
        <${Field} label=${t("x.clinic")} id="ap-clinic">
          <select id="ap-clinic" value=${clinicId} onChange=${(e) => setClinicId(e.target.value)}>
            ${clinics.map((c) => html`<option value=${c.clinic.id}>${c.clinic.name} (${c.clinic.city})</option>`)}
          </select>
        </${Field}>
        <${Field} label=${t("x.services")} id="ap-services"><input id="ap-services" required value=${services} onInput=${(e) => setServices(e.target.value)} /></${Field}>
        <${Field} label=${t("x.complaints")} id="ap-complaints"><input id="ap-complaints" value=${complaints} onInput=${(e) => setComplaints(e.target.value)} /></${Field}>
      </div>
      <button class="btn btn-primary" type="submit">${t("x.check")}</button>
      <${Decision} result=${d.decision} />
    </form>
  </${Card}>`;
}

function Person({ id }) {
  const [data, setData] = useState(null);
  const [clinics, setClinics] = useState([]);
  const [error, setError] = useState(null);
  const load = () => get(`/api/dispatch/persons/${id}/coverage`).then(setData, setError);
  useEffect(() => {
    load();
    get(`/api/dispatch/persons/${id}/clinics`, { purpose: "visit" }).then(setClinics, () => setClinics([]));
  }, [id]);
  const letterAction = async (letter, action) => {
    try {
      await api("POST", `/api/dispatch/letters/${letter.id}/${action}`, {});
      load();
    } catch (err) {
      setError(err);
    }
  };
  const closeEvent = async (event) => {
    try {
      await post(`/api/dispatch/events/${event.id}/close`, {});
      load();
    } catch (err) {
      setError(err);
    }
  };
  if (!data) return error ? html`<${ErrorBox} error=${error} />` : html`<${Spinner} />`;
  const card = data.card;
  const openEvents = data.events.filter((e) => e.status === "open");
  return html`<div class="stack">
    <p><a href=${href("/dispatcher")}>← ${t("x.back")}</a></p>
    <h1>${card.full_name}</h1>
    <${ErrorBox} error=${error} />
    <div class="grid">
      <${Card} title=${t("x.coverage")}>
        <dl class="facts">
          <dt>${t("x.policy")}</dt><dd>${card.policy.number} (${card.policy.policyholder}), ${card.policy.valid_today ? t("x.valid") : t("x.notValid")}</dd>
          <dt>${t("x.program")}</dt><dd>${card.program.name}</dd>
          <dt>${t("x.components")}</dt><dd>${card.program.components.map((c) => t("x.comp." + c)).join(", ")}</dd>
          <dt>${t("x.serviceType")}</dt><dd>${t("service." + card.service_type)}</dd>
          <dt>${t("x.attached")}</dt><dd>${card.attached_clinic ? card.attached_clinic.name : "—"}</dd>
          <dt>${t("x.city")}</dt><dd>${card.city}</dd>
          <dt>${t("x.telemed")}</dt><dd>${card.telemedicine.left} / ${card.telemedicine.allowance_per_year}</dd>
        </dl>
      </${Card}>
      <${Card} title=${t("x.clinicsAllowed")}>
        <ul class="list small">${clinics.map((c) => html`<li>${c.clinic.name}, ${c.clinic.address} <span class="muted">(${c.clinic.city}, ${t("x.category", { n: c.clinic.price_category })})</span>
          ${c.needs_pass_photo && html` <${Badge} kind="wait">${t("x.passPhoto")}</${Badge}>`}
          <span class="muted small"> ${c.reasons.map((r) => r.rule).join(", ")}</span></li>`)}</ul>
      </${Card}>
    </div>
    <${Card} title=${t("x.events")}>
      <${EventForm} personId=${id} onDone=${load} />
      ${openEvents.map((ev) => html`<div class="card">
        <div class="card-head"><h3 class="card-title">${t("x.comp." + ev.component)}: ${ev.complaints}</h3>
          <button type="button" class="btn btn-ghost" onClick=${() => closeEvent(ev)}>${t("x.closeEvent")}</button></div>
        <${Reasons} reasons=${ev.reasons} />
        ${clinics.length > 0 && html`<${LetterForm} event=${ev} clinics=${clinics} onDone=${load} />`}
      </div>`)}
    </${Card}>
    <${Card} title=${t("x.letters")}>
      ${card.letters.length === 0 ? html`<p class="muted">${t("x.noLetters")}</p>` : html`<ul class="list">
        ${card.letters.map((l) => html`<li>
          <div class="card-head"><span><strong>${l.number}</strong> · ${l.clinic.name} · ${l.services.join(", ")} · ${t("x.until", { date: formatDate(l.valid_until) })}</span>
            <${Badge} kind=${l.validity === "active" ? "ok" : "neutral"}>${l.validity}</${Badge}></div>
          ${l.status === "active" && html`<div class="row">
            <button type="button" class="btn btn-ghost" onClick=${() => letterAction(l, "extend")}>${t("x.extend")}</button>
            <button type="button" class="btn btn-ghost" onClick=${() => letterAction(l, "close")}>${t("x.closeLetter")}</button>
          </div>
          <${VisitForm} letter=${l} onDone=${load} />`}
        </li>`)}
      </ul>`}
      ${card.visits.length > 0 && html`<h3>${t("x.visits")}</h3><ul class="list">${card.visits.map((v) => html`<li>${v.text}</li>`)}</ul>`}
    </${Card}>
    ${clinics.length > 0 && html`<${ApprovalCheck} personId=${id} clinics=${clinics} />`}
    <${Card} title=${t("x.decisions")}>
      ${data.decisions.length === 0 ? html`<p class="muted">—</p>` : html`<ul class="list">
        ${data.decisions.slice(0, 30).map((dcs) => html`<li>
          <${Badge} kind=${dcs.allowed ? "ok" : "err"}>${dcs.allowed ? t("x.allowed") : t("x.refused")}</${Badge}>
          <strong> ${dcs.kind}</strong> <span class="muted small">${formatDateTime(dcs.created_at)}</span>
          <${Reasons} reasons=${dcs.reasons} />
        </li>`)}
      </ul>`}
    </${Card}>
  </div>`;
}

function Page({ current }) {
  const where = useStore(route);
  if (!current) return html`<${StaffLogin} title=${t("x.login")} />`;
  const [section, id] = where.parts;
  if (section === "person" && id) return html`<${Person} key=${id} id=${id} />`;
  return html`<div class="stack">
    <h1>${t("x.title")}</h1>
    <div class="split"><${FindPerson} /><${Queue} /></div>
  </div>`;
}

export default { messages, Page };
