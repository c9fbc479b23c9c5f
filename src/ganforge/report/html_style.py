"""The inline stylesheet of the HTML report (no external fonts, scripts or images)."""

CSS = """
:root { --ok: #1b7f3b; --ok-bg: #e3f4e8; --bad: #b42318; --bad-bg: #fde8e6; --warn: #8a5a00; --warn-bg: #fff3d6;
        --mute: #5f6b7a; --line: #e3e7ec; --card: #ffffff; --bg: #f5f7fa; --accent: #2859c5; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: #1d2733; font: 14px/1.45 -apple-system, "Segoe UI", Roboto,
       "DejaVu Sans", Helvetica, Arial, sans-serif; }
header { background: #1d2733; color: #fff; padding: 18px 28px; }
header h1 { margin: 0; font-size: 22px; font-weight: 600; }
header p { margin: 4px 0 0; color: #c4ccd6; font-size: 13px; }
main { max-width: 1280px; margin: 0 auto; padding: 18px 24px 48px; }
section.card { background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: 16px 20px;
               margin: 16px 0; box-shadow: 0 1px 2px rgba(16, 24, 40, .05); }
h2 { font-size: 18px; margin: 0 0 10px; }
h3 { font-size: 14px; margin: 16px 0 6px; color: var(--mute); text-transform: uppercase; letter-spacing: .04em; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: #f0f3f7; font-weight: 600; white-space: nowrap; }
tr:nth-child(even) td { background: #fafbfc; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.best td { background: #eef6ff; }
a { color: var(--accent); text-decoration: none; }
a:hover { text-decoration: underline; }
code, pre { font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 12px; }
pre { background: #f6f8fa; border: 1px solid var(--line); border-radius: 6px; padding: 10px; overflow-x: auto; }
.badge { display: inline-block; padding: 1px 9px; margin: 1px 3px 1px 0; border-radius: 999px; font-size: 12px;
         font-weight: 600; white-space: nowrap; }
.badge.ok { color: var(--ok); background: var(--ok-bg); }
.badge.bad { color: var(--bad); background: var(--bad-bg); }
.badge.warn { color: var(--warn); background: var(--warn-bg); }
.badge.mute { color: var(--mute); background: #eceff3; }
.why { color: var(--mute); font-size: 12px; }
.meta { color: var(--mute); font-size: 13px; margin: 0 0 8px; }
.cols { display: flex; flex-wrap: wrap; gap: 16px; align-items: flex-start; }
.cols > figure { margin: 0; }
figure img { max-width: 100%; border: 1px solid var(--line); border-radius: 6px; background: #fff; }
figcaption { color: var(--mute); font-size: 12px; text-align: center; }
.strip { display: flex; gap: 8px; overflow-x: auto; padding-bottom: 6px; }
.strip figure { margin: 0; flex: 0 0 auto; }
.strip img { width: 150px; image-rendering: pixelated; }
.gallery { display: grid; grid-template-columns: repeat(auto-fill, minmax(170px, 1fr)); gap: 12px; }
.gallery figure { margin: 0; }
.gallery img { width: 100%; image-rendering: pixelated; }
.diag { border-left: 4px solid var(--ok); background: var(--ok-bg); padding: 8px 12px; border-radius: 0 6px 6px 0; }
.diag.bad { border-color: var(--bad); background: var(--bad-bg); }
.diag h4 { margin: 6px 0 2px; font-size: 14px; }
.diag ul { margin: 4px 0 6px 18px; padding: 0; }
details > summary { cursor: pointer; font-weight: 600; padding: 4px 0; }
details.run > summary { font-size: 16px; }
.scroll { overflow-x: auto; }
.evidence { font-family: "DejaVu Sans Mono", Menlo, monospace; font-size: 12px; }
"""
