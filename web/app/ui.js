// Small shared components. Everything is styled by classes in app.css: the CSP forbids inline styles.
import { html } from "./html.js";
import { useState } from "preact/hooks";
import { errorText, t } from "./i18n.js";
import { staffLogin } from "./api.js";
import { unlockSound } from "./notify.js";

let uid = 0;
export const newId = (prefix = "f") => `${prefix}-${++uid}`;

export function Card({ title, children, className = "", headingLevel = 2, actions }) {
  const Heading = `h${headingLevel}`;
  return html`<section class=${"card " + className}>
    ${title && html`<div class="card-head"><${Heading} class="card-title">${title}</${Heading}>${actions}</div>`}
    ${children}
  </section>`;
}

export function Field({ label, hint, id, children }) {
  return html`<div class="field">
    <label for=${id}>${label}</label>
    ${children}
    ${hint && html`<p class="hint" id=${id + "-hint"}>${hint}</p>`}
  </div>`;
}

export function ErrorBox({ error }) {
  if (!error) return null;
  return html`<div class="alert alert-error" role="alert">${typeof error === "string" ? error : errorText(error)}</div>`;
}

export function Notice({ kind = "info", children }) {
  return html`<div class=${"alert alert-" + kind} role="status">${children}</div>`;
}

export function Badge({ kind = "neutral", children }) {
  return html`<span class=${"badge badge-" + kind}>${children}</span>`;
}

export function Spinner() {
  return html`<p class="muted" role="status">${t("app.loading")}</p>`;
}

export function Reasons({ reasons }) {
  if (!reasons || !reasons.length) return null;
  return html`<ul class="reasons">
    ${reasons.map((r) => html`<li><span class="rule">${r.rule}</span> ${r.message}</li>`)}
  </ul>`;
}

/** A submit handler that tracks busy/error state. */
export function useAction(fn) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const run = async (...args) => {
    setBusy(true);
    setError(null);
    try {
      return await fn(...args);
    } catch (err) {
      setError(err);
      return undefined;
    } finally {
      setBusy(false);
    }
  };
  return { run, busy, error, setError };
}

/** Username + password login for doctors, dispatchers and admins. */
export function StaffLogin({ title, usernameHint }) {
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const action = useAction(() => staffLogin(username.trim(), password));
  const submit = (event) => {
    event.preventDefault();
    unlockSound();
    action.run();
  };
  return html`<${Card} title=${title || t("login.staffTitle")} className="narrow">
    <form onSubmit=${submit} class="stack">
      <${Field} label=${t("login.username")} id="login-username" hint=${usernameHint}>
        <input id="login-username" name="username" autocomplete="username" required value=${username}
          aria-describedby=${usernameHint ? "login-username-hint" : undefined}
          onInput=${(e) => setUsername(e.target.value)} />
      </${Field}>
      <${Field} label=${t("login.password")} id="login-password">
        <input id="login-password" name="password" type="password" autocomplete="current-password" required
          value=${password} onInput=${(e) => setPassword(e.target.value)} />
      </${Field}>
      <${ErrorBox} error=${action.error} />
      <button class="btn btn-primary" type="submit" disabled=${action.busy}>${t("login.submit")}</button>
    </form>
  </${Card}>`;
}
