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
"nav.account ul { display: flex; flex-wrap: wrap; gap: .25rem 1rem; list-style: none;\n"
"  margin: 0 0 1rem; padding: 0 0 .5rem; border-bottom: 1px solid var(--line); }\n"
"nav.account a { display: inline-block; padding: .5rem 0; min-height: 44px; }\n"
".notice { border-left: 4px solid var(--accent); padding: .25rem .75rem; }\n"
".status { font-weight: 600; }\n"
"table.history th[scope=row] { white-space: nowrap; }\n"
".visually-hidden { position: absolute; width: 1px; height: 1px; overflow: hidden;\n"
"  clip: rect(0 0 0 0); white-space: nowrap; }\n"
".fate, .small { display: block; font-size: .875rem; color: var(--muted); }\n"
"form.inline { display: inline; margin: 0; }\n"
"form.inline button { min-height: 44px; padding: .4rem .8rem; background: transparent;\n"
"  color: var(--accent); border: 1px solid var(--accent); }\n"
".badge { display: inline-block; font-size: .8rem; padding: 0 .4rem; border-radius: 4px;\n"
"  border: 1px solid var(--muted); color: var(--ink); }\n"
".badge.expired { border-color: var(--error); color: var(--error); }\n"
"dl.receipt { display: grid; grid-template-columns: max-content 1fr; gap: .25rem 1rem; }\n"
"dl.receipt dt { color: var(--muted); }\n"
"dl.receipt dd { margin: 0; overflow-wrap: anywhere; }\n"
"@media print { header.site, form.signed-in, nav.account, footer.site, .skip, .no-print {\n"
"  display: none; } body, main { background: #fff; } main { max-width: none; padding: 0; }\n"
"  a { color: inherit; text-decoration: none; } table { page-break-inside: avoid; } }\n";
// clang-format on

static const ml_web_asset_t s_assets[] = {
    {"/static/portal.css", "text/css; charset=utf-8", s_portal_css},
    {NULL, NULL, NULL},
};

const ml_web_asset_t *ml_web_assets (void);

const ml_web_asset_t *ml_web_assets (void)
{
    return s_assets;
}
