// The app shell: header (title, language, connection, log out), the role chooser, and the page
// of the role in the route, loaded on demand from its own folder (see roles.js).
import { html, render } from "./html.js";
import { useEffect, useState } from "preact/hooks";
import { LANGUAGES, addMessages, setLanguage, t, useLanguage } from "./i18n.js";
import { logout, restoreSession, session } from "./api.js";
import { connection, sessionNotice, startSocket, stopSocket } from "./ws.js";
import { href, route } from "./router.js";
import { useStore } from "./store.js";
import { ROLES } from "./roles.js";
import { Spinner } from "./ui.js";

const loaded = new Map();

function LanguageSwitch() {
  const lang = useLanguage();
  return html`<div class="lang" role="group" aria-label=${t("app.language")}>
    ${LANGUAGES.map(
      (code) => html`<button type="button" class="lang-btn" lang=${code} aria-pressed=${code === lang}
        onClick=${() => setLanguage(code)}>${code === "ru" ? "Рус" : "Eng"}</button>`,
    )}
  </div>`;
}

function ConnectionBadge() {
  const state = useStore(connection);
  if (state === "idle") return null;
  const key = state === "open" ? "conn.open" : state === "offline" ? "conn.offline" : "conn.connecting";
  return html`<span class=${"conn conn-" + state} role="status" aria-live="polite">${t(key)}</span>`;
}

/** Why the server signed this tab out (idle past the limit, A10; or the session ended), above the login. */
function SessionNotice() {
  const reason = useStore(sessionNotice);
  if (!reason) return null;
  return html`<p class="alert alert-warn session-notice" role="alert" data-testid="session-notice">
    ${t(reason === "idle" ? "session.idle" : "session.ended")}</p>`;
}

function Header() {
  const current = useStore(session);
  return html`<header class="top">
    <a class="brand" href="#/"><img src="/static/app/icon.svg" alt="" width="28" height="28" /><span>${t("app.title")}</span></a>
    <div class="top-tools">
      <${ConnectionBadge} />
      <${LanguageSwitch} />
      ${current && html`<button type="button" class="btn btn-ghost" onClick=${() => logout()}>${t("app.logout")}</button>`}
    </div>
  </header>`;
}

function Home() {
  return html`<div class="home">
    <h1>${t("app.title")}</h1>
    <p class="lead">${t("app.tagline")}</p>
    <h2>${t("app.roles")}</h2>
    <ul class="role-list">
      ${ROLES.map((role) => html`<li><a class="role-link" href=${href("/" + role.id)}>${t(role.label)}</a></li>`)}
    </ul>
  </div>`;
}

function RolePage({ role, current }) {
  const [module, setModule] = useState(loaded.get(role.id));
  useEffect(() => {
    if (module) return;
    role.load().then((m) => {
      addMessages(m.default.messages || {});
      loaded.set(role.id, m.default);
      setModule(m.default);
    });
  }, [role.id]);
  if (!module) return html`<${Spinner} />`;
  const Page = module.Page;
  return html`<${Page} current=${current && role.apiRoles.includes(current.role) ? current : null} />`;
}

function App() {
  useLanguage();
  const where = useStore(route);
  const current = useStore(session);
  const [restored, setRestored] = useState(false);
  useEffect(() => {
    restoreSession().finally(() => setRestored(true));
  }, []);
  useEffect(() => {
    if (current) startSocket();
    else stopSocket();
  }, [current && current.role]);
  useEffect(() => {
    document.title = t("app.title");
  });
  const role = ROLES.find((r) => r.id === where.role);
  let body;
  if (!restored) body = html`<${Spinner} />`;
  else if (!where.role) body = html`<${Home} />`;
  else if (!role) body = html`<h1>${t("app.notFound")}</h1>`;
  else body = html`<${RolePage} key=${role.id} role=${role} current=${current} />`;
  return html`<a class="skip" href="#main" onClick=${(e) => {
      e.preventDefault();
      document.getElementById("main").focus();
    }}>${t("app.skip")}</a>
    <${Header} />
    <main id="main" tabindex="-1"><${SessionNotice} />${body}</main>`;
}

render(html`<${App} />`, document.getElementById("app"));
