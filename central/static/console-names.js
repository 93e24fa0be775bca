// Names people read instead of ids: checkpoints by their name on the ring (GET /api/v1/ring, in the page's
// language), the rule "lists" (套牌, 无牌车, 快检) by their name in the dictionary, kit drugs by name (/common/drugs.js).
import { ruleListName } from "/common/hits.js";
import { CORDON_I18N, cordonLang, t } from "/common/i18n.js";

Object.assign(CORDON_I18N.zh, {
  "rule.kit.positive": "毒品快检阳性",
  "rule.kit.invalid": "毒品快检无效", "rule.kit": "毒品快检",
});
Object.assign(CORDON_I18N.en, {
  "rule.kit.positive": "Quick test positive",
  "rule.kit.invalid": "Quick test invalid", "rule.kit": "Drug quick test",
});

let ringById = new Map();
export const ringLoaded = fetch("/api/v1/ring", { credentials: "same-origin" })
  .then((r) => (r.ok ? r.json() : { checkpoints: [] }))
  .then((body) => {
    const found = body.checkpoints || [];
    ringById = new Map(found.map((c) => [c.checkpoint, c]));
    return found;
  })
  .catch(() => []);

// A checkpoint's name in the page's language (its id when the ring does not know it).
export function checkpointName(id) {
  const c = ringById.get(id);
  if (!c) return id;
  return (cordonLang() === "en" ? c.name_en || c.name : c.name || c.name_en) || id;
}

// The name of an alert's list: a watchlist's own name, or a rule's name from the dictionary.
export function listName(hit) {
  const rule = ruleListName(hit);
  if (rule) return rule;
  if (hit.list_id === "rule:kit") {
    const call = /(positive|invalid)$/.exec(hit.list_name || "");
    return t(call ? "rule.kit." + call[1] : "rule.kit");
  }
  return hit.list_name;
}

// A drug panel's code by name: one dictionary for the console and the tablet (/common/drugs.js).
export { drugName } from "/common/drugs.js";
