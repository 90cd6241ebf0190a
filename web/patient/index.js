// The insured person's pages: policy login with a one-time code, the consultation (request,
// live queue place, chat, summary), the coverage card, history, and who accessed my data.
import { html } from "../app/html.js";
import { useEffect, useRef, useState } from "preact/hooks";
import { get, post, startPolicyLogin, verifyPolicyLogin } from "../app/api.js";
import { subscribe } from "../app/ws.js";
import { Badge, Card, ErrorBox, Field, Notice, Spinner, useAction } from "../app/ui.js";
import { formatDate, formatDateTime, language, t } from "../app/i18n.js";
import { href, route } from "../app/router.js";
import { useStore } from "../app/store.js";
import { Chat } from "../app/chat.js";
import { CallPanel, DeviceCheck } from "../app/call.js";
import { SPECIALTIES } from "../app/terms.js";
import { alertUser, askNotificationPermission, notificationPermission, unlockSound } from "../app/notify.js";
import messages from "./messages.js";

const OPEN = ["queued", "offered", "active"];
// While the request waits it is withdrawn with "cancel the request"; once a doctor holds it the
// patient leaves it instead (same endpoint, rules.cancel accepts it), after a confirmation: a
// doctor who never completes must not keep the patient's one open consultation forever.
const WAITING = ["queued", "offered"];

function LeaveConsultation({ onLeave }) {
  const [asking, setAsking] = useState(false);
  if (!asking) {
    return html`<button type="button" class="btn btn-ghost" data-testid="leave" onClick=${() => setAsking(true)}>${t("p.leave")}</button>`;
  }
  return html`<div class="stack" role="group" aria-label=${t("p.leave")} data-testid="leave-confirm">
    <p class="alert alert-warn" role="alert">${t("p.leaveConfirm")}</p>
    <div class="row">
      <button type="button" class="btn btn-danger" data-testid="leave-yes" onClick=${onLeave}>${t("p.leaveYes")}</button>
      <button type="button" class="btn btn-ghost" onClick=${() => setAsking(false)}>${t("p.leaveNo")}</button>
    </div>
  </div>`;
}

function Login() {
  const [policy, setPolicy] = useState("");
  const [birth, setBirth] = useState("");
  const [digits, setDigits] = useState("");
  const [needDigits, setNeedDigits] = useState(false);
  const [challenge, setChallenge] = useState(null);
  const [code, setCode] = useState("");
  const start = useAction(async () => {
    // 12 digits (spaces and dashes allowed) is the personal insured number on the card.
    const raw = policy.trim();
    const identifier = /^[0-9 -]+$/.test(raw) && raw.replace(/[^0-9]/g, "").length === 12
      ? { insured_number: raw }
      : { policy_number: raw.toUpperCase() };
    try {
      setChallenge(await startPolicyLogin({ ...identifier, birth_date: birth, ...(needDigits && digits ? { phone_last_digits: digits } : {}) }));
    } catch (err) {
      if (err.code === "phone_digits_required") setNeedDigits(true);
      throw err;
    }
  });
  const verify = useAction(() => verifyPolicyLogin(challenge.challenge_id, code.trim()));
  if (!challenge) {
    return html`<${Card} title=${t("p.loginTitle")} className="narrow" headingLevel=${1}>
      <form class="stack" onSubmit=${(e) => { e.preventDefault(); unlockSound(); start.run(); }}>
        <${Field} label=${t("p.policy")} id="policy" hint=${t("p.policyHint")}>
          <input id="policy" name="policy" required autocomplete="off" autocapitalize="characters" value=${policy}
            aria-describedby="policy-hint" onInput=${(e) => setPolicy(e.target.value)} />
        </${Field}>
        <${Field} label=${t("p.birthDate")} id="birth">
          <input id="birth" name="birth" type="date" required autocomplete="bday" value=${birth} onInput=${(e) => setBirth(e.target.value)} />
        </${Field}>
        ${needDigits && html`<${Field} label=${t("p.phoneDigits")} id="phone-digits" hint=${t("p.phoneDigitsHint")}>
          <input id="phone-digits" name="phone-digits" required inputmode="numeric" pattern="[0-9]{4}" maxlength="4"
            aria-describedby="phone-digits-hint" value=${digits} onInput=${(e) => setDigits(e.target.value)} />
        </${Field}>`}
        <${ErrorBox} error=${start.error} />
        <button class="btn btn-primary" type="submit" disabled=${start.busy}>${t("p.getCode")}</button>
      </form>
    </${Card}>`;
  }
  return html`<${Card} title=${t("p.loginTitle")} className="narrow" headingLevel=${1}>
    <form class="stack" onSubmit=${(e) => { e.preventDefault(); unlockSound(); verify.run(); }}>
      <${Notice}>${t("p.codeSent")}</${Notice}>
      ${challenge.dev_hint && html`<p class="alert alert-dev" data-testid="dev-hint">${t("p.devHint")} <code>${challenge.dev_hint}</code></p>`}
      <${Field} label=${t("p.code")} id="code">
        <input id="code" name="code" required inputmode="numeric" pattern="[0-9]{6}" maxlength="6" autocomplete="one-time-code"
          value=${code} onInput=${(e) => setCode(e.target.value)} />
      </${Field}>
      <${ErrorBox} error=${verify.error} />
      <div class="row">
        <button class="btn btn-primary" type="submit" disabled=${verify.busy}>${t("p.verify")}</button>
        <button class="btn btn-ghost" type="button" onClick=${() => { setChallenge(null); setCode(""); }}>${t("p.otherPolicy")}</button>
      </div>
    </form>
  </${Card}>`;
}

function Nav({ section }) {
  const items = [["", "p.nav.home"], ["coverage", "p.nav.coverage"], ["history", "p.nav.history"], ["access", "p.nav.access"]];
  return html`<nav class="subnav" aria-label=${t("p.nav")}>
    ${items.map(([path, key]) => html`<a href=${href("/patient/" + path)} aria-current=${section === path ? "page" : undefined}>${t(key)}</a>`)}
  </nav>`;
}

function NotificationOptIn() {
  const [permission, setPermission] = useState(notificationPermission());
  if (permission === "unsupported") return null;
  if (permission === "granted") return html`<p class="muted small">${t("p.notifyOn")}</p>`;
  if (permission === "denied") return html`<p class="muted small">${t("p.notifyDenied")}</p>`;
  return html`<div class="optin">
    <p class="small">${t("p.notifyExplain")}</p>
    <button type="button" class="btn btn-ghost" onClick=${async () => { unlockSound(); setPermission(await askNotificationPermission()); }}>${t("p.notify")}</button>
  </div>`;
}

// E1: before the first consultation the patient gives the consent to telemedicine care and to
// processing of health data, on the versioned texts the server serves (who, when, version and from
// where are recorded there).
function Consents({ status, onGiven }) {
  const lang = useStore(language);
  const [checked, setChecked] = useState({});
  const action = useAction(async () => {
    for (const text of status.texts.filter((x) => status.missing.includes(x.kind))) {
      await post("/api/me/consents", { kind: text.kind, version: text.version, language: lang === "en" ? "en" : "ru" });
    }
    onGiven();
  });
  const missing = status.texts.filter((x) => status.missing.includes(x.kind));
  const all = missing.every((x) => checked[x.kind]);
  return html`<${Card} title=${t("p.consentTitle")}>
    <form class="stack" onSubmit=${(e) => { e.preventDefault(); action.run(); }}>
      ${missing.map((x) => html`<div class="consent">
        <p class="prewrap">${lang === "en" ? x.en : x.ru}</p>
        <label class="choice"><input type="checkbox" name=${"consent-" + x.kind} checked=${!!checked[x.kind]}
          onChange=${(e) => setChecked({ ...checked, [x.kind]: e.target.checked })} /> ${t("p.consentAgree")}</label>
      </div>`)}
      <${ErrorBox} error=${action.error} />
      <button class="btn btn-primary" type="submit" disabled=${action.busy || !all}>${t("p.consentGive")}</button>
    </form>
  </${Card}>`;
}

function RequestForm({ onCreated, allowance }) {
  const lang = useStore(language);
  const [specialty, setSpecialty] = useState("general_practice");
  const [channel, setChannel] = useState("text");
  const [complaints, setComplaints] = useState("");
  const [checklist, setChecklist] = useState(null);
  const [consents, setConsents] = useState(null);
  const [answers, setAnswers] = useState({});
  const [emergency, setEmergency] = useState(false);
  const loadConsents = () => get("/api/me/consents").then(setConsents, () => setConsents({ missing: [], texts: [] }));
  useEffect(() => {
    get("/api/consultations/red-flags").then(setChecklist, () => setChecklist({ questions: [], if_any_yes: {} }));
    loadConsents();
  }, []);
  const anyYes = Object.values(answers).some((v) => v === true);
  const answeredAll = checklist && checklist.questions.every((q) => answers[q.code] !== undefined);
  const send = (urgent) => post("/api/consultations", {
    specialty, channel, complaints: complaints.trim(), red_flags: answers, confirm_urgent: urgent,
  });
  const action = useAction(async (urgent) => onCreated(await send(urgent)));
  if (!checklist || !consents) return html`<${Spinner} />`;
  if (consents.missing.length) return html`<${Consents} status=${consents} onGiven=${loadConsents} />`;
  const submit = (e) => {
    e.preventDefault();
    unlockSound();
    // R11.6: any "yes" tells the patient at once to call 103/112; the request, if made, is urgent.
    if (anyYes && !emergency) setEmergency(true);
    else action.run(anyYes);
  };
  const instruction = checklist.if_any_yes || {};
  return html`<${Card} title=${t("p.request")}>
    ${allowance && html`<p class="muted">${t("p.telemedLeft", { year: String(allowance.year) })}: ${t("p.telemedCount", { count: allowance.left, total: allowance.allowance_per_year })}</p>`}
    <form class="stack" onSubmit=${submit}>
      <${Field} label=${t("p.specialty")} id="specialty">
        <select id="specialty" value=${specialty} onChange=${(e) => setSpecialty(e.target.value)}>
          ${SPECIALTIES.map((s) => html`<option value=${s}>${t("spec." + s)}</option>`)}
        </select>
      </${Field}>
      <fieldset class="field">
        <legend>${t("p.channel")}</legend>
        <div class="row">
          ${["text", "audio", "video"].map((c) => html`<label class="choice"><input type="radio" name="channel" value=${c} checked=${channel === c}
            onChange=${() => setChannel(c)} /> ${t("channel." + c)}</label>`)}
        </div>
        <p class="hint">${t("p.callsHint")}</p>
      </fieldset>
      <${Field} label=${t("p.complaints")} id="complaints" hint=${t("p.complaintsHint")}>
        <textarea id="complaints" required maxlength="2000" rows="4" aria-describedby="complaints-hint" value=${complaints}
          onInput=${(e) => setComplaints(e.target.value)}></textarea>
      </${Field}>
      <fieldset class="field red-flags" data-testid="red-flags">
        <legend>${t("p.redFlags")}</legend>
        ${checklist.questions.map((q) => html`<div class="red-flag">
          <span id=${"rf-" + q.code}>${lang === "en" ? q.en : q.ru}</span>
          <span class="row" role="radiogroup" aria-labelledby=${"rf-" + q.code}>
            <label class="choice"><input type="radio" name=${"rf-" + q.code} value="no" checked=${answers[q.code] === false}
              onChange=${() => { setAnswers({ ...answers, [q.code]: false }); setEmergency(false); }} /> ${t("p.no")}</label>
            <label class="choice"><input type="radio" name=${"rf-" + q.code} value="yes" checked=${answers[q.code] === true}
              onChange=${() => setAnswers({ ...answers, [q.code]: true })} /> ${t("p.yes")}</label>
          </span>
        </div>`)}
      </fieldset>
      ${emergency && html`<div class="alert alert-error" role="alert" data-testid="emergency">
        <p><strong>${lang === "en" ? instruction.en : instruction.ru}</strong></p>
        <p>${t("p.urgentNote")}</p>
      </div>`}
      <${ErrorBox} error=${action.error} />
      <button class="btn btn-primary" type="submit" disabled=${action.busy || !answeredAll}>
        ${emergency ? t("p.askUrgent") : t("p.ask")}</button>
      ${!answeredAll && html`<p class="hint">${t("p.redFlagsHint")}</p>`}
    </form>
  </${Card}>`;
}

function Summary({ consultation }) {
  const s = consultation.summary;
  if (!s) return null;
  return html`<${Card} title=${t("p.summary")} className="summary">
    <dl class="facts">
      <dt>${t("p.diagnosis")}</dt><dd><span class="code">${s.icd10_code}</span> ${s.icd10_description}</dd>
      <dt>${t("outcome." + s.outcome)}</dt><dd class="prewrap">${s.notes}</dd>
      ${s.referral_specialty && html`<dt>${t("p.referredTo")}</dt><dd>${t("spec." + s.referral_specialty)}${s.referral_services.length ? ": " + s.referral_services.join(", ") : ""}</dd>`}
      ${s.instructions && language.get() === "en" && html`<dt>${t("p.whereToGo")}</dt><dd>${s.instructions}</dd>`}
      ${s.clinic && html`<dt>${t("p.clinic")}</dt><dd>${s.clinic.name}, ${s.clinic.address}, ${s.clinic.phone}</dd>`}
    </dl>
    ${s.dispatch_request_id && html`<${Notice}>${t("p.dispatchRequest", { id: s.dispatch_request_id })}</${Notice}>`}
    ${s.emergency_phones && s.emergency_phones.length > 0 && html`<p class="emergency">${t("p.emergencyPhones", { phones: s.emergency_phones.join(", ") })}</p>`}
  </${Card}>`;
}

function QueueStatus({ consultation, onCancel }) {
  const c = consultation;
  return html`<${Card} title=${c.status === "active" ? t("p.active", { name: c.doctor_name || "" }) : t("p.queued")}
      actions=${html`<${Badge} kind=${c.status === "active" ? "ok" : "wait"}>${t("status." + c.status)}</${Badge}>`}>
    ${c.status !== "active" && html`<div class="queue" role="status" aria-live="polite">
      ${c.queue_position && html`<p class="big" data-testid="queue-position">${t("p.position", { n: c.queue_position })}</p>`}
      <p>${c.estimated_wait_minutes != null ? t("p.wait", { count: c.estimated_wait_minutes }) : t("p.waitUnknown")}</p>
      ${c.doctor_on_duty === false && html`<${Notice} kind="warn">${t("p.noDoctor")}</${Notice}>`}
      <${NotificationOptIn} />
      ${c.channel !== "text" && html`<div class="optin"><${DeviceCheck} /></div>`}
    </div>`}
    <p class="muted small">${t("spec." + c.specialty)} · ${formatDateTime(c.requested_at)}</p>
    ${WAITING.includes(c.status) && html`<button type="button" class="btn btn-ghost" onClick=${onCancel}>${t("p.cancel")}</button>`}
    ${c.status === "active" && html`<${LeaveConsultation} onLeave=${onCancel} />`}
  </${Card}>`;
}

function ConsultationHome({ me }) {
  const [current, setCurrent] = useState(undefined);
  const [allowance, setAllowance] = useState(null);
  const [error, setError] = useState(null);
  const [ringing, setRinging] = useState(null);
  const prevStatus = useRef(null);
  const onEvent = (event) => {
    if (event && event.type === "call.ringing") {
      setRinging((old) => {
        if (!old || old.call_id !== event.call_id) alertUser(t("call.ringing"), "");
        return event;
      });
    } else load();
  };

  const load = async () => {
    try {
      const list = await get("/api/consultations");
      const open = list.find((c) => OPEN.includes(c.status));
      const latest = open || list.sort((a, b) => b.id - a.id)[0] || null;
      const next = latest && OPEN.includes(latest.status) ? await get(`/api/consultations/${latest.id}`) : latest;
      setCurrent(next);
      if (!open) setAllowance(await get("/api/consultations/allowance"));
    } catch (err) {
      setError(err);
    }
  };

  useEffect(() => {
    load();
    const stop = subscribe("notifications.subscribe", () => ({}), onEvent);
    return stop;
  }, []);

  useEffect(() => {
    // Poll while waiting: the estimated wait changes without an event.
    if (!current || !WAITING.includes(current.status)) return undefined;
    const timer = setInterval(load, 15_000);
    return () => clearInterval(timer);
  }, [current && current.status]);

  useEffect(() => {
    if (!current) return;
    if (prevStatus.current && prevStatus.current !== "active" && current.status === "active") {
      alertUser(t("p.doctorAccepted", { name: current.doctor_name || "" }), current.complaints);
    }
    prevStatus.current = current.status;
  }, [current && current.status]);

  if (current === undefined) return error ? html`<${ErrorBox} error=${error} />` : html`<${Spinner} />`;
  const open = current && OPEN.includes(current.status);
  const cancel = async () => {
    try {
      // The reason tells the doctor (and the audit) that the patient left an active consultation.
      const body = current.status === "active" ? { reason: "the patient left the consultation" } : {};
      await post(`/api/consultations/${current.id}/cancel`, body);
      load();
    } catch (err) {
      setError(err);
    }
  };
  return html`<div class="stack">
    <h1>${t("p.hello", { name: me ? me.display_name : "" })}</h1>
    <${ErrorBox} error=${error} />
    ${open
      ? html`<div class="split">
          <${QueueStatus} consultation=${current} onCancel=${cancel} />
          <div class="stack">
            ${current.status === "active" && html`<${CallPanel} consultationId=${current.id} channel=${current.channel} canStart=${false}
              ringing=${ringing && ringing.consultation_id === current.id ? ringing : null} onClosed=${() => setRinging(null)} />`}
            <${Chat} consultationId=${current.id} me="insured" canWrite=${true} onConsultationEvent=${onEvent} />
          </div>
        </div>`
      : html`${current && current.status === "completed" && html`<${Summary} consultation=${current} />`}
          <${RequestForm} allowance=${allowance} onCreated=${() => load()} />`}
  </div>`;
}

function CoverageCard() {
  const [card, setCard] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => {
    get("/api/me/coverage").then(setCard, setError);
  }, []);
  if (error) return html`<${ErrorBox} error=${error} />`;
  if (!card) return html`<${Spinner} />`;
  const tm = card.telemedicine;
  return html`<div class="stack">
    <h1>${t("p.coverage")}</h1>
    <div class="grid">
      <${Card} title=${t("p.program")}>
        <dl class="facts">
          <dt>${t("p.program")}</dt><dd>${card.program.name}</dd>
          <dt>${t("p.serviceType")}</dt><dd>${t("service." + card.service_type)}</dd>
          <dt>${t("p.clinic")}</dt><dd>${card.attached_clinic ? `${card.attached_clinic.name}, ${card.attached_clinic.address}` : t("p.noClinic")}</dd>
          <dt>${t("p.components")}</dt><dd>${card.program.components.map((c) => t("p.comp." + c)).join(", ")}</dd>
        </dl>
        <p class="muted small">${card.policy.number} · ${t("p.policyPeriod", { from: formatDate(card.policy.starts_on), to: formatDate(card.policy.ends_on) })}</p>
      </${Card}>
      <${Card} title=${t("p.answersNow")}>
        <p class="big"><a href=${"tel:" + card.answers_now.phone.replace(/[^+0-9]/g, "")}>${card.answers_now.phone}</a></p>
        <p>${card.answers_now.name}</p>
        <p class="muted small">${t("p.cardPhone")}: ${card.card_phone.phone}</p>
      </${Card}>
      <${Card} title=${t("p.telemedLeft", { year: String(tm.year) })}>
        <p class="big">${t("p.telemedCount", { count: tm.left, total: tm.allowance_per_year })}</p>
      </${Card}>
    </div>
    <${Card} title=${t("p.letters")}>
      ${card.letters.length === 0 ? html`<p class="muted">${t("p.noLetters")}</p>` : html`<ul class="list">
        ${card.letters.map((l) => html`<li><strong>${l.number}</strong> · ${l.clinic.name} · ${l.services.join(", ")}
          <${Badge} kind=${l.validity === "active" ? "ok" : "neutral"}>${t("p.validity." + l.validity)}</${Badge}>
          <span class="muted small">${t("p.validUntil", { date: formatDate(l.valid_until) })}</span></li>`)}
      </ul>`}
    </${Card}>
    <${Card} title=${t("p.visits")}>
      ${card.visits.length === 0 ? html`<p class="muted">${t("p.noVisits")}</p>` : html`<ul class="list">
        ${card.visits.map((v) => html`<li><strong>${formatDateTime(v.scheduled_at)}</strong> · ${v.clinic.name}, ${v.clinic.address} · ${v.doctor_name} · ${v.services.join(", ")}</li>`)}
      </ul>`}
    </${Card}>
  </div>`;
}

function History({ id }) {
  const [list, setList] = useState(null);
  const [one, setOne] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => {
    if (id) get(`/api/consultations/${id}`).then(setOne, setError);
    else get("/api/consultations").then((l) => setList(l.sort((a, b) => b.id - a.id)), setError);
  }, [id]);
  if (error) return html`<${ErrorBox} error=${error} />`;
  if (id) {
    if (!one) return html`<${Spinner} />`;
    return html`<div class="stack">
      <p><a href=${href("/patient/history")}>← ${t("p.back")}</a></p>
      <h1>${t("p.consultation", { id: one.id })}</h1>
      <p>${t("spec." + one.specialty)} · ${formatDateTime(one.requested_at)} · ${t("status." + one.status)}${one.doctor_name ? " · " + one.doctor_name : ""}</p>
      <p class="prewrap">${one.complaints}</p>
      <${Summary} consultation=${one} />
      <${Chat} consultationId=${one.id} me="insured" canWrite=${OPEN.includes(one.status)} />
    </div>`;
  }
  if (!list) return html`<${Spinner} />`;
  return html`<div class="stack">
    <h1>${t("p.history")}</h1>
    ${list.length === 0 ? html`<p class="muted">${t("p.noHistory")}</p>` : html`<ul class="list">
      ${list.map((c) => html`<li class="history-item">
        <a href=${href("/patient/history/" + c.id)}>${t("p.consultation", { id: c.id })}</a>
        · ${formatDateTime(c.requested_at)} · ${t("spec." + c.specialty)} · <${Badge}>${t("status." + c.status)}</${Badge}>
        ${c.summary && html`<span class="small"> · <span class="code">${c.summary.icd10_code}</span> ${c.summary.icd10_description}</span>`}
      </li>`)}
    </ul>`}
  </div>`;
}

function AccessLog() {
  const [rows, setRows] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => {
    get("/api/me/access-log").then((r) => setRows(r.events), setError);
  }, []);
  if (error) return html`<${ErrorBox} error=${error} />`;
  if (!rows) return html`<${Spinner} />`;
  return html`<div class="stack">
    <h1>${t("p.access")}</h1>
    <p class="muted">${t("p.accessExplain")}</p>
    ${rows.length === 0 ? html`<p class="muted">${t("p.noAccess")}</p>` : html`<div class="table-wrap"><table>
      <thead><tr><th scope="col">${t("p.when")}</th><th scope="col">${t("p.who")}</th><th scope="col">${t("p.what")}</th><th scope="col">${t("p.result")}</th></tr></thead>
      <tbody>${rows.map((r) => html`<tr>
        <td>${formatDateTime(r.occurred_at)}</td>
        <td>${r.actor_name} <span class="muted small">(${t("role." + r.actor_role)})</span></td>
        <td>${r.description}</td>
        <td>${r.result}</td>
      </tr>`)}</tbody>
    </table></div>`}
  </div>`;
}

function Page({ current }) {
  const where = useStore(route);
  const [me, setMe] = useState(null);
  useEffect(() => {
    if (current) get("/api/me").then(setMe, () => {});
  }, [current && current.role]);
  if (!current) return html`<${Login} />`;
  const [section, id] = where.parts;
  let body;
  if (section === "coverage") body = html`<${CoverageCard} />`;
  else if (section === "history") body = html`<${History} id=${id} />`;
  else if (section === "access") body = html`<${AccessLog} />`;
  else body = html`<${ConsultationHome} me=${me} />`;
  return html`<div class="page"><${Nav} section=${section || ""} />${body}</div>`;
}

export default { messages, Page };
