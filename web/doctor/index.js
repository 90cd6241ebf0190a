// The doctor's pages: log in, my shifts, the live queue (sound + notification on an offer),
// accept or pass, then chat beside the patient's coverage summary and close with notes, an
// ICD-10 code found by name or code, and an outcome.
import { html } from "../app/html.js";
import { useEffect, useRef, useState } from "preact/hooks";
import { get, post } from "../app/api.js";
import { subscribe } from "../app/ws.js";
import { Badge, Card, ErrorBox, Field, Notice, Spinner, StaffLogin, useAction } from "../app/ui.js";
import { formatDateTime, formatTime, has, t } from "../app/i18n.js";
import { href, navigate, route } from "../app/router.js";
import { useStore } from "../app/store.js";
import { Chat } from "../app/chat.js";
import { CallPanel } from "../app/call.js";
import { SPECIALTIES } from "../app/terms.js";
import { alertUser, askNotificationPermission, notificationPermission, unlockSound } from "../app/notify.js";
import messages from "./messages.js";

function useNow(everyMs = 1000) {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), everyMs);
    return () => clearInterval(timer);
  }, []);
  return now;
}

function NotificationOptIn() {
  const [permission, setPermission] = useState(notificationPermission());
  if (permission === "unsupported" || permission === "granted") return null;
  if (permission === "denied") return html`<p class="muted small">${t("d.notifyDenied")}</p>`;
  return html`<div class="optin row">
    <p class="small">${t("d.notifyExplain")}</p>
    <button type="button" class="btn btn-ghost" onClick=${async () => { unlockSound(); setPermission(await askNotificationPermission()); }}>${t("d.notify")}</button>
  </div>`;
}

function Offer({ c, onChange }) {
  const now = useNow();
  const left = c.offer_expires_at ? Math.max(0, Math.round((Date.parse(c.offer_expires_at) - now) / 1000)) : null;
  const accept = useAction(async () => {
    await post(`/api/consultations/${c.id}/accept`, {});
    navigate(`/doctor/c/${c.id}`);
  });
  const pass = useAction(async () => {
    await post(`/api/consultations/${c.id}/decline`, {});
    onChange();
  });
  return html`<li class="card offer" data-testid="offer">
    <div class="card-head"><strong>${c.patient_name || t("d.patient")}</strong>
      ${left !== null && html`<${Badge} kind="wait">${t("d.secondsLeft", { count: left })}</${Badge}>`}</div>
    <p class="prewrap">${c.complaints}</p>
    <p class="muted small">${t("spec." + c.specialty)} · ${t("channel." + c.channel)} · ${formatTime(c.requested_at)}</p>
    <${ErrorBox} error=${accept.error || pass.error} />
    <div class="row">
      <button type="button" class="btn btn-primary" disabled=${accept.busy} onClick=${() => accept.run()}>${t("d.accept")}</button>
      <button type="button" class="btn btn-ghost" disabled=${pass.busy} onClick=${() => pass.run()}>${t("d.pass")}</button>
    </div>
  </li>`;
}

function Queue() {
  const [queue, setQueue] = useState(null);
  const [error, setError] = useState(null);
  const known = useRef(new Set());
  const load = async () => {
    try {
      const q = await get("/api/doctor/queue");
      const fresh = q.offers.filter((o) => !known.current.has(o.id));
      if (fresh.length) {
        alertUser(t("d.newOffer"), fresh[0].complaints);
      }
      for (const o of q.offers) known.current.add(o.id);
      setQueue(q);
    } catch (err) {
      setError(err);
    }
  };
  useEffect(() => {
    load();
    const stop = subscribe("notifications.subscribe", () => ({}), () => load());
    const timer = setInterval(load, 20_000);
    return () => {
      stop();
      clearInterval(timer);
    };
  }, []);
  if (error && !queue) return html`<${ErrorBox} error=${error} />`;
  if (!queue) return html`<${Spinner} />`;
  const waiting = Object.entries(queue.waiting);
  return html`<div class="stack">
    <${Card} title=${t("d.queue")} headingLevel=${2}>
      ${queue.on_duty_specialties.length
        ? html`<p>${t("d.onDuty", { specs: queue.on_duty_specialties.map((s) => t("spec." + s)).join(", "), until: formatDateTime(queue.duty_ends_at) })}</p>`
        : html`<${Notice} kind="warn">${t("d.offDuty")}</${Notice}>`}
      <p class="muted small">${waiting.length ? waiting.map(([s, n]) => `${t("spec." + s)}: ${t("d.waitingCount", { count: n })}`).join(" · ") : ""}</p>
      <${NotificationOptIn} />
    </${Card}>
    <section aria-labelledby="offers-title">
      <h2 id="offers-title">${t("d.offers")}</h2>
      <div aria-live="polite">
        ${queue.offers.length === 0 ? html`<p class="muted">${t("d.noOffers")}</p>` : html`<ul class="list">${queue.offers.map((c) => html`<${Offer} key=${c.id} c=${c} onChange=${load} />`)}</ul>`}
      </div>
    </section>
    <section aria-labelledby="active-title">
      <h2 id="active-title">${t("d.active")}</h2>
      ${queue.active.length === 0 ? html`<p class="muted">${t("d.noActive")}</p>` : html`<ul class="list">
        ${queue.active.map((c) => html`<li><a href=${href("/doctor/c/" + c.id)}>${c.patient_name || t("d.patient")}</a> · ${t("spec." + c.specialty)} · ${formatTime(c.accepted_at)}</li>`)}
      </ul>`}
    </section>
  </div>`;
}

function Shifts() {
  const [shifts, setShifts] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => {
    get("/api/roster/mine", { tz: Intl.DateTimeFormat().resolvedOptions().timeZone || "Europe/Moscow" }).then(setShifts, setError);
  }, []);
  return html`<${Card} title=${t("d.shifts")}>
    <${ErrorBox} error=${error} />
    ${!shifts ? html`<${Spinner} />` : shifts.length === 0 ? html`<p class="muted">${t("d.noShifts")}</p>` : html`<ul class="list">
      ${shifts.slice(0, 8).map((s) => html`<li>${formatDateTime(s.starts_at)} – ${formatTime(s.ends_at)} · ${t("spec." + s.specialty)}</li>`)}
    </ul>`}
  </${Card}>`;
}

function PatientCard({ id }) {
  const [card, setCard] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => {
    get(`/api/consultations/${id}/patient-card`).then(setCard, setError);
  }, [id]);
  return html`<${Card} title=${t("d.patientCard")}>
    <${ErrorBox} error=${error} />
    ${card ? html`<dl class="facts">
      <dt>${t("d.name")}</dt><dd>${card.full_name}, ${t("d.age", { count: card.age })}</dd>
      <dt>${t("d.city")}</dt><dd>${card.city}</dd>
      <dt>${t("d.program")}</dt><dd>${card.program} · ${t("service." + card.service_type)}</dd>
      <dt>${t("d.policy")}</dt><dd>${card.policy_valid_today ? t("d.valid") : t("d.notValid")}</dd>
      <dt>${t("d.telemed")}</dt><dd>${card.telemedicine_left} / ${card.telemedicine_per_year}</dd>
      <dt>${t("d.clinic")}</dt><dd>${card.attached_clinic || t("d.noClinic")}</dd>
      <dt>${t("d.answersNow")}</dt><dd>${card.answers_now}, ${card.answers_now_phone}</dd>
    </dl>` : !error && html`<${Spinner} />`}
  </${Card}>`;
}

function Icd10Picker({ value, onPick }) {
  const [query, setQuery] = useState("");
  const [results, setResults] = useState([]);
  const timer = useRef(null);
  const search = (q) => {
    setQuery(q);
    clearTimeout(timer.current);
    if (q.trim().length < 2) {
      setResults([]);
      return;
    }
    timer.current = setTimeout(async () => {
      try {
        setResults((await get("/api/icd10", { q: q.trim(), limit: 12 })).results);
      } catch (_) {
        setResults([]);
      }
    }, 200);
  };
  return html`<div class="field">
    <label for="icd-search">${t("d.icd")}</label>
    <input id="icd-search" autocomplete="off" value=${query} placeholder=${t("d.icdPlaceholder")}
      aria-describedby=${has("d.icdLanguage") ? "icd-language icd-hint" : "icd-hint"} onInput=${(e) => search(e.target.value)} />
    ${has("d.icdLanguage") && html`<p class="hint" id="icd-language" data-testid="icd-language">${t("d.icdLanguage")}</p>`}
    <p class="hint" id="icd-hint">${value ? html`${t("d.icdChosen")}: <span class="code" data-testid="icd-chosen">${value.code}</span> ${value.description}` : t("d.icdHint")}</p>
    ${results.length > 0 && html`<ul class="results" aria-label=${t("d.icdResults")}>
      ${results.map((r) => html`<li><button type="button" onClick=${() => { onPick(r); setResults([]); setQuery(r.code); }}>
        <span class="code">${r.code}</span> ${r.description}</button></li>`)}
    </ul>`}
  </div>`;
}

// R11.5: the doctor links the consultation to one of the patient's open insured events or opens a
// new one (the default); the server only suggests an event with the same ICD-10 category.
function EventChoice({ id, icd, value, onChange }) {
  const [choices, setChoices] = useState(null);
  useEffect(() => {
    get(`/api/consultations/${id}/open-events`, icd ? { icd10_code: icd.code } : {}).then(setChoices, () => setChoices(null));
  }, [id, icd && icd.code]);
  if (!choices || choices.events.length === 0) return null;
  return html`<fieldset class="field" data-testid="event-choice">
    <legend>${t("d.event")}</legend>
    <label class="choice"><input type="radio" name="event" checked=${value === null} onChange=${() => onChange(null)} /> ${t("d.eventNew")}</label>
    ${choices.events.map((e) => html`<label class="choice">
      <input type="radio" name="event" value=${e.id} checked=${value === e.id} onChange=${() => onChange(e.id)} />
      ${t("d.eventOpen", { date: e.opened_at.slice(0, 10), complaints: e.complaints })}
      ${choices.suggested_event_id === e.id && html` <${Badge} kind="ok">${t("d.eventSuggested")}</${Badge}>`}</label>`)}
  </fieldset>`;
}

function CompleteForm({ id, onDone }) {
  const [notes, setNotes] = useState("");
  const [icd, setIcd] = useState(null);
  const [eventId, setEventId] = useState(null);
  const [outcome, setOutcome] = useState("advice");
  const [referralSpecialty, setReferralSpecialty] = useState("general_practice");
  const [services, setServices] = useState("");
  const action = useAction(async () => {
    if (!icd) throw Object.assign(new Error("icd"), { code: "icd_required" });
    const body = { notes: notes.trim(), icd10_code: icd.code, outcome, insured_event_id: eventId };
    if (outcome === "referral") {
      body.referral_specialty = referralSpecialty;
      body.referral_services = services.split(",").map((s) => s.trim()).filter(Boolean);
    }
    await post(`/api/consultations/${id}/complete`, body);
    onDone();
  });
  return html`<${Card} title=${t("d.complete")}>
    <form class="stack" onSubmit=${(e) => { e.preventDefault(); action.run(); }}>
      <${Field} label=${t("d.notes")} id="notes">
        <textarea id="notes" rows="4" required maxlength="10000" value=${notes} onInput=${(e) => setNotes(e.target.value)}></textarea>
      </${Field}>
      <${Icd10Picker} value=${icd} onPick=${setIcd} />
      <${EventChoice} id=${id} icd=${icd} value=${eventId} onChange=${setEventId} />
      <fieldset class="field">
        <legend>${t("d.outcome")}</legend>
        <div class="row">
          ${["advice", "referral", "emergency"].map((o) => html`<label class="choice">
            <input type="radio" name="outcome" value=${o} checked=${outcome === o} onChange=${() => setOutcome(o)} /> ${t("outcome." + o)}</label>`)}
        </div>
      </fieldset>
      ${outcome === "referral" && html`<div class="grid">
        <${Field} label=${t("d.referralSpecialty")} id="ref-spec">
          <select id="ref-spec" value=${referralSpecialty} onChange=${(e) => setReferralSpecialty(e.target.value)}>
            ${SPECIALTIES.map((s) => html`<option value=${s}>${t("spec." + s)}</option>`)}
          </select>
        </${Field}>
        <${Field} label=${t("d.referralServices")} id="ref-services" hint=${t("d.referralServicesHint")}>
          <input id="ref-services" value=${services} aria-describedby="ref-services-hint" onInput=${(e) => setServices(e.target.value)} />
        </${Field}>
      </div>`}
      <${ErrorBox} error=${action.error} />
      <button type="submit" class="btn btn-primary" disabled=${action.busy}>${t("d.completeButton")}</button>
    </form>
  </${Card}>`;
}

function ConsultationView({ id }) {
  const [c, setC] = useState(null);
  const [error, setError] = useState(null);
  const load = () => get(`/api/consultations/${id}`).then(setC, setError);
  useEffect(() => {
    load();
  }, [id]);
  if (error) return html`<${ErrorBox} error=${error} />`;
  if (!c) return html`<${Spinner} />`;
  return html`<div class="stack">
    <p><a href=${href("/doctor")}>← ${t("d.backToQueue")}</a></p>
    <h1>${t("d.consultation", { id: c.id })} <${Badge} kind=${c.status === "active" ? "ok" : "neutral"}>${t("status." + c.status)}</${Badge}></h1>
    <p class="prewrap"><strong>${t("d.complaints")}:</strong> ${c.complaints}</p>
    <div class="consult">
      <div class="stack consult-card"><${PatientCard} id=${id} /></div>
      <div class="stack consult-talk" data-testid="consult-talk">
        ${c.status === "active" && html`<${CallPanel} consultationId=${c.id} channel=${c.channel} canStart=${true} />`}
        <${Chat} consultationId=${c.id} me="doctor" title=${t("chat.titleDoctor")} canWrite=${c.status === "active"}
          onConsultationEvent=${(e) => e.type !== "call.ringing" && load()} />
      </div>
      ${(c.status === "active" || c.summary) && html`<div class="stack consult-close" data-testid="consult-close">
        ${c.status === "active" && html`<${CompleteForm} id=${id} onDone=${load} />`}
        ${c.summary && html`<${Notice}>${t("d.completed", { code: c.summary.icd10_code })}</${Notice}>`}
      </div>`}
    </div>
  </div>`;
}

function Page({ current }) {
  const where = useStore(route);
  if (!current) return html`<${StaffLogin} title=${t("d.login")} />`;
  const [section, id] = where.parts;
  if (section === "c" && id) return html`<${ConsultationView} key=${id} id=${id} />`;
  return html`<div class="stack">
    <h1>${t("d.title")}</h1>
    <div class="split"><${Shifts} /><${Queue} /></div>
  </div>`;
}

export default { messages, Page };
