const comps = {
  ru: { outpatient: "Поликлиника", dental: "Стоматология", ambulance: "Скорая помощь", inpatient: "Стационар", telemedicine: "Телемедицина" },
  en: { outpatient: "Outpatient", dental: "Dental", ambulance: "Ambulance", inpatient: "Inpatient", telemedicine: "Telemedicine" },
};
const prefixed = (lang) => Object.fromEntries(Object.entries(comps[lang]).map(([k, v]) => ["x.comp." + k, v]));

export default {
  ru: {
    ...prefixed("ru"),
    "x.login": "Вход для диспетчера", "x.title": "Пульт диспетчера", "x.queue": "Очередь обращений", "x.show": "Показать",
    "x.status.unfinished": "Незавершённые", "x.status.open": "Новые", "x.status.in_progress": "В работе", "x.status.done": "Выполненные", "x.status.cancelled": "Отменённые",
    "x.source.insured": "Обращение", "x.source.consultation_referral": "Направление врача",
    "x.empty": "Очередь пуста.", "x.take": "Взять в работу", "x.find": "Найти застрахованного", "x.policy": "Полис", "x.name": "ФИО",
    "x.search": "Найти", "x.nobody": "Никого не нашли.", "x.back": "К очереди", "x.coverage": "Покрытие", "x.valid": "действует",
    "x.notValid": "не действует", "x.program": "Программа", "x.components": "Покрывает", "x.serviceType": "Тип обслуживания",
    "x.attached": "Прикреплён к", "x.city": "Город", "x.telemed": "Телемедицина, осталось", "x.clinicsAllowed": "Разрешённые клиники",
    "x.category": "категория {n}", "x.passPhoto": "нужно фото для пропуска", "x.events": "Страховые случаи", "x.newEvent": "Записать жалобы",
    "x.component": "Вид помощи", "x.complaints": "Жалобы", "x.classify": "Классифицировать", "x.eventOpen": "Страховой случай открыт",
    "x.eventRejected": "Не страховой случай", "x.closeEvent": "Лечение завершено", "x.clinic": "Клиника", "x.services": "Услуги (через запятую)",
    "x.issueLetter": "Выдать гарантийное письмо", "x.letterIssued": "Гарантийное письмо {number} выдано", "x.letters": "Гарантийные письма",
    "x.noLetters": "Писем нет.", "x.until": "до {date}", "x.extend": "Продлить на месяц", "x.closeLetter": "Закрыть",
    "x.visitDoctor": "Врач", "x.visitWhen": "Дата и время", "x.book": "Записать", "x.visitBooked": "Запись создана", "x.visits": "Записи",
    "x.approval": "Нужно ли согласование?", "x.check": "Проверить", "x.needsApproval": "Нужно согласование", "x.noApproval": "Согласование не нужно",
    "x.decisions": "Решения и их основания", "x.allowed": "разрешено", "x.refused": "отказано",
  },
  en: {
    ...prefixed("en"),
    "x.login": "Dispatcher login", "x.title": "Dispatch console", "x.queue": "Requests queue", "x.show": "Show",
    "x.status.unfinished": "Unfinished", "x.status.open": "New", "x.status.in_progress": "In progress", "x.status.done": "Done", "x.status.cancelled": "Cancelled",
    "x.source.insured": "Request", "x.source.consultation_referral": "Doctor's referral",
    "x.empty": "The queue is empty.", "x.take": "Take", "x.find": "Find an insured person", "x.policy": "Policy", "x.name": "Name",
    "x.search": "Search", "x.nobody": "Nobody found.", "x.back": "Back to the queue", "x.coverage": "Coverage", "x.valid": "valid",
    "x.notValid": "not valid", "x.program": "Program", "x.components": "Covers", "x.serviceType": "Service type",
    "x.attached": "Attached to", "x.city": "City", "x.telemed": "Telemedicine left", "x.clinicsAllowed": "Clinics allowed",
    "x.category": "category {n}", "x.passPhoto": "pass photo needed", "x.events": "Insured events", "x.newEvent": "Record complaints",
    "x.component": "Kind of care", "x.complaints": "Complaints", "x.classify": "Classify", "x.eventOpen": "Insured event opened",
    "x.eventRejected": "Not an insured event", "x.closeEvent": "Treatment complete", "x.clinic": "Clinic", "x.services": "Services (comma separated)",
    "x.issueLetter": "Issue a letter of guarantee", "x.letterIssued": "Letter of guarantee {number} issued", "x.letters": "Letters of guarantee",
    "x.noLetters": "No letters.", "x.until": "until {date}", "x.extend": "Extend by a month", "x.closeLetter": "Close",
    "x.visitDoctor": "Doctor", "x.visitWhen": "Date and time", "x.book": "Book", "x.visitBooked": "Visit booked", "x.visits": "Visits",
    "x.approval": "Does it need approval?", "x.check": "Check", "x.needsApproval": "Approval needed", "x.noApproval": "No approval needed",
    "x.decisions": "Decisions and their grounds", "x.allowed": "allowed", "x.refused": "refused",
  },
};
