// The drugs of the quick-test panels by name: the strips print a code (MET, KET ...), people read a name. One
// dictionary for the console's results and the tablet's test view (the tablet showed the bare codes).
import { CORDON_I18N, cordonLang, t } from "./i18n.js";

Object.assign(CORDON_I18N.zh, {
  "drug.MET": "甲基苯丙胺", "drug.MOR/OPI": "吗啡/阿片类", "drug.MOR": "吗啡", "drug.OPI": "阿片类",
  "drug.KET": "氯胺酮", "drug.MDMA": "MDMA（摇头丸）", "drug.THC": "大麻", "drug.COC": "可卡因",
  "drug.AMP": "苯丙胺", "drug.BZO": "苯二氮䓬类", "drug.MTD": "美沙酮", "drug.BUP": "丁丙诺啡",
});
Object.assign(CORDON_I18N.en, {
  "drug.MET": "methamphetamine", "drug.MOR/OPI": "morphine/opiates", "drug.MOR": "morphine", "drug.OPI": "opiates",
  "drug.KET": "ketamine", "drug.MDMA": "MDMA (ecstasy)", "drug.THC": "cannabis", "drug.COC": "cocaine",
  "drug.AMP": "amphetamine", "drug.BZO": "benzodiazepines", "drug.MTD": "methadone", "drug.BUP": "buprenorphine",
});

// A panel's code by name in the page's language; an unknown code stays a code.
export function drugName(code) {
  return Object.prototype.hasOwnProperty.call(CORDON_I18N[cordonLang()], "drug." + code) ? t("drug." + code) : code;
}
