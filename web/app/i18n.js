// Russian and English with the browser's Intl: PluralRules picks Russian plural forms,
// DateTimeFormat and NumberFormat the rest. Russian is the default; the choice is remembered
// (only the language is stored in localStorage, never a token).
import { createStore, useStore } from "./store.js";

export const LANGUAGES = ["ru", "en"];
const STORAGE_KEY = "telemed.lang";
const dictionaries = { ru: {}, en: {} };

function initialLanguage() {
  try {
    const saved = localStorage.getItem(STORAGE_KEY);
    if (LANGUAGES.includes(saved)) return saved;
  } catch (_) {
    /* storage may be disabled: fall back to the default */
  }
  return "ru";
}

export const language = createStore(initialLanguage());
document.documentElement.lang = language.get();

export function setLanguage(lang) {
  if (!LANGUAGES.includes(lang)) return;
  try {
    localStorage.setItem(STORAGE_KEY, lang);
  } catch (_) {
    /* not remembered, still switched */
  }
  document.documentElement.lang = lang;
  language.set(lang);
}

/** Role modules add their own texts: `addMessages({ru: {...}, en: {...}})`. */
export function addMessages(messages) {
  for (const lang of LANGUAGES) Object.assign(dictionaries[lang], messages[lang] || {});
}

/**
 * Translate `key`; `{name}` placeholders are filled from `params`. A value may be an object of
 * plural forms ({one, few, many, other}) chosen by `params.count` with Intl.PluralRules.
 */
export function t(key, params = {}) {
  const lang = language.get();
  let value = dictionaries[lang][key] ?? dictionaries.en[key] ?? key;
  if (typeof value === "object") {
    const form = new Intl.PluralRules(lang).select(Number(params.count ?? 0));
    value = value[form] ?? value.other;
  }
  return value.replace(/\{(\w+)\}/g, (_, name) =>
    name in params ? (typeof params[name] === "number" ? formatNumber(params[name]) : String(params[name])) : `{${name}}`,
  );
}

export function has(key) {
  return key in dictionaries[language.get()];
}

const locale = () => (language.get() === "ru" ? "ru-RU" : "en-GB");

export function formatNumber(n) {
  return new Intl.NumberFormat(locale()).format(n);
}

export function formatMoney(amount, currency = "RUB") {
  return new Intl.NumberFormat(locale(), { style: "currency", currency }).format(Number(amount));
}

export function formatDate(value) {
  if (!value) return "";
  const d = typeof value === "string" && value.length === 10 ? new Date(`${value}T12:00:00`) : new Date(value);
  return new Intl.DateTimeFormat(locale(), { day: "numeric", month: "long", year: "numeric" }).format(d);
}

export function formatDateTime(value, timeZone) {
  if (!value) return "";
  return new Intl.DateTimeFormat(locale(), { dateStyle: "medium", timeStyle: "short", timeZone }).format(new Date(value));
}

export function formatTime(value) {
  if (!value) return "";
  return new Intl.DateTimeFormat(locale(), { hour: "2-digit", minute: "2-digit" }).format(new Date(value));
}

/** Re-render the calling component when the language changes; returns the language. */
export function useLanguage() {
  return useStore(language);
}

addMessages({
  ru: {
    "app.title": "Телемед ДМС",
    "app.skip": "К содержимому",
    "app.language": "Язык",
    "app.logout": "Выйти",
    "app.loading": "Загрузка…",
    "app.home": "Главная",
    "app.roles": "Кто вы?",
    "app.tagline": "Консультации дежурных врачей круглосуточно — по вашему полису ДМС.",
    "app.notFound": "Страница не найдена",
    "app.back": "Назад",
    "conn.open": "На связи",
    "conn.connecting": "Подключение…",
    "conn.offline": "Нет сети — сообщения отправятся, когда связь вернётся",
    "session.idle": "Сеанс завершён из-за бездействия. Войдите снова, чтобы продолжить.",
    "session.ended": "Сеанс завершён. Войдите снова, чтобы продолжить.",
    "login.username": "Логин",
    "login.password": "Пароль",
    "login.submit": "Войти",
    "login.staffTitle": "Вход для сотрудников",
    "form.required": "Заполните это поле",
    "error.generic": "Что-то пошло не так. Попробуйте ещё раз.",
    "error.network": "Нет связи с сервером. Проверьте подключение.",
    "error.invalid_credentials": "Неверный логин или пароль.",
    "error.invalid_code": "Неверный или просроченный код.",
    "error.rate_limited": "Слишком много попыток. Подождите немного.",
    "error.too_many_requests": "Слишком много попыток. Подождите немного.",
    "error.validation_error": "Проверьте введённые данные.",
    "error.unauthorized": "Сеанс завершён. Войдите снова.",
    "error.wrong_role": "Эта страница для другой роли. Войдите под нужной учётной записью.",
    "error.not_found": "Не найдено.",
    "error.not_covered": "Эта услуга не покрывается вашей программой.",
    "error.consultation_open": "У вас уже есть открытая консультация.",
    "error.allowance_exhausted": "Лимит телемедицинских консультаций на этот год исчерпан.",
    "error.invalid_icd10": "Такого кода МКБ-10 нет.",
    "error.icd10_not_specific": "Выберите более точный код МКБ-10 (подрубрику).",
    "error.phone_digits_required": "С этой датой рождения на полисе несколько человек: введите личный номер с карточки или последние 4 цифры телефона.",
    "error.rules": "Правила: {rules}",
    "role.insured": "Застрахованный",
    "role.patient": "Пациент",
    "role.doctor": "Врач",
    "role.dispatcher": "Диспетчер",
    "role.admin": "Администратор",
    "role.hr": "HR",
  },
  en: {
    "app.title": "Telemed VHI",
    "app.skip": "Skip to content",
    "app.language": "Language",
    "app.logout": "Log out",
    "app.loading": "Loading…",
    "app.home": "Home",
    "app.roles": "Who are you?",
    "app.tagline": "On-call doctors around the clock, under your voluntary health insurance policy.",
    "app.notFound": "Page not found",
    "app.back": "Back",
    "conn.open": "Connected",
    "conn.connecting": "Connecting…",
    "conn.offline": "Offline — messages will be sent when the connection is back",
    "session.idle": "Your session ended because of inactivity. Log in again to continue.",
    "session.ended": "Your session has ended. Log in again to continue.",
    "login.username": "Username",
    "login.password": "Password",
    "login.submit": "Log in",
    "login.staffTitle": "Staff login",
    "form.required": "Please fill in this field",
    "error.generic": "Something went wrong. Please try again.",
    "error.network": "Cannot reach the server. Check your connection.",
    "error.invalid_credentials": "Wrong username or password.",
    "error.invalid_code": "Wrong or expired code.",
    "error.rate_limited": "Too many attempts. Please wait a little.",
    "error.too_many_requests": "Too many attempts. Please wait a little.",
    "error.validation_error": "Please check what you entered.",
    "error.unauthorized": "Your session has ended. Please log in again.",
    "error.wrong_role": "This page is for another role. Log in with the right account.",
    "error.not_found": "Not found.",
    "error.not_covered": "Your program does not cover this service.",
    "error.consultation_open": "You already have an open consultation.",
    "error.allowance_exhausted": "No telemedicine consultations left this year.",
    "error.invalid_icd10": "There is no such ICD-10 code.",
    "error.icd10_not_specific": "Pick a more specific ICD-10 code (a subcategory).",
    "error.phone_digits_required": "Several people on this policy share this birth date: enter the insured number from your card or the last 4 digits of your phone.",
    "error.rules": "Rules: {rules}",
    "role.insured": "Insured person",
    "role.patient": "Patient",
    "role.doctor": "Doctor",
    "role.dispatcher": "Dispatcher",
    "role.admin": "Admin",
    "role.hr": "HR",
  },
});

/** An API error in the user's language: a known code's text, else the generic one, plus rule ids. */
export function errorText(error) {
  if (!error) return "";
  if (error.network) return t("error.network");
  const key = `error.${error.code}`;
  let text = has(key) ? t(key) : language.get() === "en" && error.message ? error.message : t("error.generic");
  if (error.rules && error.rules.length) text += " " + t("error.rules", { rules: error.rules.join(", ") });
  return text;
}
