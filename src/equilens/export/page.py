"""An offline HTML page that shows a chemiscope file with the shipped viewer.

Browsers do not let pages opened from disk ``fetch`` other files, so the
dataset is embedded in the page in a ``<script type="application/json">``
tag, and the viewer, the ``chemiscope.min.js`` that the ``chemiscope``
Python package ships, is inlined too: the page is one self-contained file
that works on any machine, offline. Once the visualizer has loaded, the page
writes a JSON summary into ``<pre id="equilens-status">`` (points on the
map, the structure and atom shown, the info panel's title), which the
browser test reads back.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional, Union

from ..errors import EquilensError
from ..storage import atomic_write
from .chemiscope import read_chemiscope

PathLike = Union[str, Path]

_PAGE = """<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
<title>{title}</title>
<script>{script}</script>
<style>
body {{ margin: 0; font-family: sans-serif; }}
#equilens-root {{ display: flex; width: 1200px; height: 720px; }}
#equilens-left, #equilens-right {{ width: 600px; }}
#map {{ height: 640px; }}
#structure {{ height: 460px; }}
#equilens-status {{ display: none; }}
</style>
</head>
<body>
<div id="equilens-root">
  <div id="equilens-left"><div id="meta"></div><div id="map"></div></div>
  <div id="equilens-right"><div id="structure"></div><div id="info"></div></div>
</div>
<pre id="equilens-status">loading</pre>
<script id="equilens-dataset" type="application/json">{data}</script>
<script>
(function () {{
  const status = document.getElementById("equilens-status");
  const report = (value) => {{ status.textContent = JSON.stringify(value); }};
  window.addEventListener("error", (event) => report({{error: String(event.message)}}));
  if (typeof Chemiscope === "undefined") {{
    report({{error: "chemiscope.min.js did not load"}});
    return;
  }}
  const dataset = JSON.parse(document.getElementById("equilens-dataset").textContent);
  const config = {{map: "map", info: "info", meta: "meta", structure: "structure"}};
  Chemiscope.DefaultVisualizer.load(config, dataset).then((visualizer) => {{
    window.visualizer = visualizer;
    // let plotly and 3Dmol finish their first draw
    setTimeout(() => {{
      try {{
        const info = visualizer.info._shadow ? visualizer.info._shadow.textContent : "";
        const title = (info.match(/Properties for (structure|atom) \\d+/) || [""])[0];
        report({{
          loaded: true,
          points: visualizer.map._plot.data[0].x.length,
          structure: visualizer.saveSettings().pinned[0],
          active: visualizer.structure.activeIndex,
          structures: visualizer.structure._structures.length,
          info: title,
        }});
      }} catch (error) {{
        report({{error: String(error)}});
      }}
    }}, {delay});
  }}).catch((error) => report({{error: String(error)}}));
}})();
</script>
</body>
</html>
"""


def chemiscope_script() -> Path:
    """Path of the ``chemiscope.min.js`` shipped by the chemiscope package."""
    import chemiscope

    path = Path(chemiscope.__file__).parent / "sphinx" / "static" / "chemiscope.min.js"
    if not path.is_file():
        raise EquilensError(
            f"chemiscope {chemiscope.__version__} does not ship chemiscope.min.js at {path}"
        )
    return path


def standalone_html(
    dataset: PathLike, html: Optional[PathLike] = None, delay_ms: int = 2000
) -> Path:
    """Write an offline page showing ``dataset`` (a chemiscope ``.json[.gz]``).

    :param dataset: the chemiscope file
    :param html: the page to write (default: next to the dataset, ``.html``)
    :param delay_ms: wait after loading before the page writes its summary
    :returns: the page's path
    """
    dataset = Path(dataset)
    data = read_chemiscope(dataset)
    if html is None:
        html = dataset.with_name(dataset.name.split(".json")[0] + ".html")
    text = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    viewer = chemiscope_script().read_text(encoding="utf8")
    if "</script" in viewer.lower():  # would end the inline script early
        viewer = viewer.replace("</script", "<\\/script").replace("</SCRIPT", "<\\/SCRIPT")
    page = _PAGE.format(
        title=str(data.get("meta", {}).get("name", dataset.stem)).replace("<", "&lt;"),
        script=viewer,
        data=text,
        delay=int(delay_ms),
    )
    html = Path(html)
    with atomic_write(html, "w") as handle:
        handle.write(page)
    return html
