/*  ml_web_assets: the portal's static files, compiled into matterlink-web so that it needs
    no files beside its binary and no CDN. One style sheet, phone-first (it reads at 390 px
    and grows to a column on wide screens), with visible focus for keyboard use. */
#include <stddef.h>

typedef struct {
    const char *path;
    const char *type;
    const char *data;
} ml_web_asset_t;

// clang-format off
static const char s_portal_css[] =
":root { --ink: #1b1f24; --muted: #56606b; --line: #d5dae0; --accent: #0b5cad;\n"
"  --accent-ink: #ffffff; --error: #a4161a; --paper: #ffffff; --wash: #f4f6f8; }\n"
"* { box-sizing: border-box; }\n"
"html { font-size: 100%; -webkit-text-size-adjust: 100%; }\n"
"body { margin: 0; font-family: system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif;\n"
"  font-size: 1rem; line-height: 1.5; color: var(--ink); background: var(--wash); }\n"
".skip { position: absolute; left: -999px; top: 0; background: var(--paper); padding: .5rem; }\n"
".skip:focus { left: .5rem; }\n"
"header.site { background: var(--accent); color: var(--accent-ink); padding: .75rem 1rem; }\n"
"header.site .firm { margin: 0; font-weight: 600; font-size: 1.1rem; overflow-wrap: anywhere; }\n"
"main { max-width: 56rem; margin: 0 auto; padding: 1rem; background: var(--paper);\n"
"  min-height: 60vh; }\n"
"footer.site { max-width: 56rem; margin: 0 auto; padding: 1rem; color: var(--muted);\n"
"  font-size: .875rem; }\n"
"h1 { font-size: 1.5rem; margin: .5rem 0 1rem; }\n"
"h2 { font-size: 1.2rem; margin: 1.5rem 0 .25rem; overflow-wrap: anywhere; }\n"
".ref, .matter-name, .hint { color: var(--muted); }\n"
".ref { font-weight: 400; font-size: 1rem; }\n"
".matter-name { margin: 0 0 .5rem; }\n"
"a { color: var(--accent); }\n"
"a:focus-visible, button:focus-visible, input:focus-visible {\n"
"  outline: 3px solid #f2a900; outline-offset: 2px; }\n"
"form.stack { display: flex; flex-direction: column; gap: .5rem; max-width: 26rem; }\n"
"label { font-weight: 600; }\n"
"input[type=email], input[type=password], input[type=text] { font: inherit; width: 100%;\n"
"  padding: .6rem .7rem; border: 1px solid #8a949e; border-radius: 4px; min-height: 44px; }\n"
"button, .button { font: inherit; display: inline-block; min-height: 44px; padding: .6rem 1.2rem;\n"
"  border: 0; border-radius: 4px; background: var(--accent); color: var(--accent-ink);\n"
"  cursor: pointer; text-decoration: none; text-align: center; }\n"
"form.stack button { margin-top: .5rem; }\n"
"form.signed-in { display: flex; flex-wrap: wrap; align-items: center; gap: .5rem;\n"
"  justify-content: space-between; margin: 0 0 1rem; }\n"
"form.signed-in p { margin: 0; color: var(--muted); }\n"
"form.signed-in button { background: transparent; color: var(--accent);\n"
"  border: 1px solid var(--accent); }\n"
".error { color: var(--error); border-left: 4px solid var(--error); padding: .25rem .75rem; }\n"
".empty { padding: 1rem; background: var(--wash); border-radius: 4px; }\n"
"table { width: 100%; border-collapse: collapse; margin: .5rem 0 1rem; }\n"
"th, td { text-align: left; padding: .5rem; border-bottom: 1px solid var(--line);\n"
"  vertical-align: top; }\n"
"thead th { font-size: .875rem; color: var(--muted); }\n"
".num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }\n"
".pending { display: block; font-size: .8rem; color: var(--muted); }\n"
"@media (max-width: 36rem) {\n"
"  thead { position: absolute; left: -999px; }\n"
"  table, tbody, tr, th, td { display: block; width: 100%; }\n"
"  tr { border: 1px solid var(--line); border-radius: 4px; margin: 0 0 .75rem; padding: .25rem 0; }\n"
"  th, td { border: 0; padding: .2rem .75rem; }\n"
"  th[data-label]::before, td[data-label]::before { content: attr(data-label) \": \";\n"
"    color: var(--muted); font-weight: 400; }\n"
"  .num { text-align: left; }\n"
"}\n"
"fieldset { border: 1px solid var(--line); border-radius: 4px; margin: .5rem 0;\n"
"  display: flex; flex-direction: column; gap: .4rem; }\n"
"fieldset { min-width: 0; }\n"
"select { font: inherit; min-height: 44px; width: 100%; max-width: 100%; }\n"
"input[type=checkbox], input[type=radio] { width: 1.2rem; height: 1.2rem; margin-right: .4rem; }\n"
"#new-card { display: flex; flex-direction: column; gap: .4rem; }\n"
"@media print { header.site, form.signed-in { display: none; } body { background: #fff; } }\n";
static const char s_pay_js[] =
"/* pay.js: the hosted-fields step of /pay (docs/web.md). The card inputs have no name, so\n"
"   the form never sends them to matterlink; this script posts them to the card processor's\n"
"   tokenization URL (the form's data-tokenize-url) and puts only the token in the form. */\n"
"(function () {\n"
"  \"use strict\";\n"
"  var form = document.getElementById(\"pay-form\");\n"
"  if (!form) { return; }\n"
"  var url = form.getAttribute(\"data-tokenize-url\");\n"
"  var note = document.getElementById(\"card-js-note\");\n"
"  var shown = document.getElementById(\"card-error\");\n"
"  if (note && url) { note.hidden = true; }\n"
"  function field(id) { return document.getElementById(id); }\n"
"  function fail(text) {\n"
"    shown.textContent = text;\n"
"    shown.hidden = false;\n"
"    form.querySelector(\"button[type=submit]\").disabled = false;\n"
"  }\n"
"  form.addEventListener(\"submit\", function (event) {\n"
"    var chosen = form.querySelector(\"input[name=method]:checked\");\n"
"    if (!chosen || chosen.value !== \"new\" || !url || form.elements.token.value) { return; }\n"
"    event.preventDefault();\n"
"    shown.hidden = true;\n"
"    form.querySelector(\"button[type=submit]\").disabled = true;\n"
"    var card = {\n"
"      number: field(\"card-number\").value.replace(/[\\s-]/g, \"\"),\n"
"      exp_month: parseInt(field(\"card-exp-month\").value, 10),\n"
"      exp_year: parseInt(field(\"card-exp-year\").value, 10),\n"
"      cvc: field(\"card-cvc\").value.trim()\n"
"    };\n"
"    fetch(url, {method: \"POST\", headers: {\"Content-Type\": \"application/json\"},\n"
"                body: JSON.stringify(card), credentials: \"omit\", referrerPolicy: \"no-referrer\"})\n"
"      .then(function (response) {\n"
"        return response.json().then(function (body) { return {ok: response.ok, body: body}; });\n"
"      })\n"
"      .then(function (answer) {\n"
"        if (!answer.ok || !answer.body.token) {\n"
"          var why = answer.body && answer.body.error && answer.body.error.message;\n"
"          fail(\"The card was refused\" + (why ? \": \" + why : \"\") + \". Nothing was charged.\");\n"
"          return;\n"
"        }\n"
"        form.elements.token.value = answer.body.token;\n"
"        form.elements.card_brand.value = answer.body.brand;\n"
"        form.elements.card_last4.value = answer.body.last4;\n"
"        form.elements.card_exp_month.value = answer.body.exp_month;\n"
"        form.elements.card_exp_year.value = answer.body.exp_year;\n"
"        [\"card-number\", \"card-exp-month\", \"card-exp-year\", \"card-cvc\"].forEach(function (id) {\n"
"          field(id).value = \"\";\n"
"        });\n"
"        form.submit();\n"
"      })\n"
"      .catch(function () {\n"
"        fail(\"The card processor could not be reached. Please try again.\");\n"
"      });\n"
"  });\n"
"})();\n";
// clang-format on

static const ml_web_asset_t s_assets[] = {
    {"/static/portal.css", "text/css; charset=utf-8", s_portal_css},
    {"/static/pay.js", "text/javascript; charset=utf-8", s_pay_js},
    {NULL, NULL, NULL},
};

const ml_web_asset_t *ml_web_assets (void);

const ml_web_asset_t *ml_web_assets (void)
{
    return s_assets;
}
