export default {
  ru: {
    "a.login": "Вход для администратора", "a.title": "Дежурства врачей", "a.gaps": "Пробелы в графике (R11.2)",
    "a.noAlerts": "Открытых предупреждений нет: терапевт на связи каждый час.", "a.coverageCaption": "Покрытие графика на две недели",
    "a.specialty": "Специальность", "a.covered": "Часов покрыто", "a.gapHours": "Часов без врача", "a.state": "Состояние",
    "a.alert": "пробел", "a.ok": "круглосуточно", "a.hours": "по часам работы", "a.roster": "График на ближайшие двое суток",
    "a.start": "Начало", "a.end": "Конец", "a.doctor": "Врач",
  },
  en: {
    "a.login": "Admin login", "a.title": "Doctors' duty", "a.gaps": "Roster gaps (R11.2)",
    "a.noAlerts": "No open alerts: a general practitioner is on duty every hour.", "a.coverageCaption": "Roster coverage for two weeks",
    "a.specialty": "Specialty", "a.covered": "Hours covered", "a.gapHours": "Hours without a doctor", "a.state": "State",
    "a.alert": "gap", "a.ok": "round the clock", "a.hours": "working hours", "a.roster": "Roster for the next two days",
    "a.start": "Start", "a.end": "End", "a.doctor": "Doctor",
  },
};
