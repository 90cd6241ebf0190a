// The roles this app shell knows. Each role is a folder with an index.js that exports
// `default {messages, Page}`; it is loaded only when its route is opened, so a patient's first
// load carries no doctor or dispatcher code. A new role (HR) adds one entry here.
export const ROLES = [
  { id: "patient", label: "role.patient", apiRoles: ["insured"], load: () => import("../patient/index.js") },
  { id: "doctor", label: "role.doctor", apiRoles: ["doctor"], load: () => import("../doctor/index.js") },
  { id: "dispatcher", label: "role.dispatcher", apiRoles: ["dispatcher"], load: () => import("../dispatcher/index.js") },
  { id: "admin", label: "role.admin", apiRoles: ["admin"], load: () => import("../admin/index.js") },
  { id: "hr", label: "role.hr", apiRoles: ["hr"], load: () => import("../hr/index.js") },
];
