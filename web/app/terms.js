// Domain words every role shows: specialties, consultation statuses, outcomes, channels.
import { addMessages } from "./i18n.js";

export const SPECIALTIES = [
  "general_practice", "pediatrics", "cardiology", "neurology", "dermatology",
  "gynecology", "otolaryngology", "gastroenterology", "endocrinology", "psychotherapy",
];

addMessages({
  ru: {
    "spec.general_practice": "Терапевт", "spec.pediatrics": "Педиатр", "spec.cardiology": "Кардиолог",
    "spec.neurology": "Невролог", "spec.dermatology": "Дерматолог", "spec.gynecology": "Гинеколог",
    "spec.otolaryngology": "ЛОР", "spec.gastroenterology": "Гастроэнтеролог",
    "spec.endocrinology": "Эндокринолог", "spec.psychotherapy": "Психотерапевт",
    "status.queued": "В очереди", "status.offered": "Ищем врача", "status.active": "Идёт консультация",
    "status.completed": "Завершена", "status.cancelled": "Отменена",
    "outcome.advice": "Рекомендации", "outcome.referral": "Направление", "outcome.emergency": "Экстренная помощь",
    "channel.text": "Чат", "channel.audio": "Аудио", "channel.video": "Видео",
    "service.dispatcher": "Через пульт страховой", "service.registry": "Прикрепление к клинике",
  },
  en: {
    "spec.general_practice": "General practitioner", "spec.pediatrics": "Pediatrician", "spec.cardiology": "Cardiologist",
    "spec.neurology": "Neurologist", "spec.dermatology": "Dermatologist", "spec.gynecology": "Gynecologist",
    "spec.otolaryngology": "ENT", "spec.gastroenterology": "Gastroenterologist",
    "spec.endocrinology": "Endocrinologist", "spec.psychotherapy": "Psychotherapist",
    "status.queued": "In the queue", "status.offered": "Finding a doctor", "status.active": "In progress",
    "status.completed": "Completed", "status.cancelled": "Cancelled",
    "outcome.advice": "Advice", "outcome.referral": "Referral", "outcome.emergency": "Emergency",
    "channel.text": "Chat", "channel.audio": "Audio", "channel.video": "Video",
    "service.dispatcher": "Through the insurer's console", "service.registry": "Attached to a clinic",
  },
});
