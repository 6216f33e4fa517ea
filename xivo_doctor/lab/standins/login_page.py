"""The web interface's login page, as each release shows it to a visitor not logged in.

Place in the lab: part of the nginx + xivo-web-interface stand-in (`standins.webservices`), which
serves `render(...)` on HTTPS `/` and `/index.php`. The page is xivo-web-interface's, trimmed to
its structure; its footer reads `XIVO - Version: <version file> "Five"` (R3 §4), the version being
read at every page from `usr/share/xivo/XIVO-VERSION` as define.inc reads it, and carries the
Avencall copyright on the releases that show it (`lab.releases.footer_has_copyright`).
"""

from __future__ import annotations

import time
from html import escape

from xivo_doctor.lab import releases
from xivo_doctor.lab.standins.base import Node

# xivo-web-interface's login page, trimmed to its structure (src/tpl/www/bloc/head.php,
# struct/page/center.php, bloc/home/login.php with the en_US texts, bloc/foot.php).
LOGIN_PAGE = """<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.01 Transitional//EN" "http://www.w3.org/TR/html4/loose.dtd">
<html lang="en">
	<head id="t-head">
		<title>{title}</title>
	</head>
	<body>
<div id="bpc-center">
<div id="bc-body">
<div id="bc-main">
	<div id="bc-content">
		<div id="b-content">
<div class="b-infos b-form">
	<h3 class="sb-top xspan"><span class="span-center">Authentication</span></h3>
	<div class="sb-content">
		<form action="#" method="post" accept-charset="utf-8">
			<div class="b-field">
<input type="text" name="login" id="it-login" size="20" value="Login" />
<input type="password" name="password" id="it-password" size="20" value="Password" />
<label for="it-language">Language:</label>
<select name="language" id="it-language"><option value="en_US">English</option></select>
<input type="submit" name="submit" id="it-submit" value="Connection" />
			</div>
		</form>
	</div>
</div>
		</div>
	</div>
</div>
</div>
</div>
		<h6 id="version-copyright">
{foot}		</h6>
		<span id="page_loaded"></span>
	</body>
</html>
"""


def footer_version(node: Node) -> str:
    """define.inc: `trim(file_get_contents(XIVO-VERSION))` if the file exists, else 'Unknown'."""
    path = node.path("/usr/share/xivo/XIVO-VERSION")
    if not path.exists():
        return releases.UNKNOWN_VERSION
    try:
        return path.read_bytes().decode("utf-8", "replace").strip(" \t\n\r\0\x0b")
    except OSError:
        return ""  # file_get_contents() false: trim(false) is ''


def render(node: Node, release: str) -> str:
    """index.php not logged in: struct home/login in page `center`, whose last block is bloc/foot."""
    try:
        hostname = node.hostname()
    except OSError:
        hostname = "localhost"
    foot = (f'{releases.SOFT_LABEL} - {releases.INFO_VERSION} {footer_version(node)} '
            f'"{releases.SOFT_CODENAME}" | Visit <a href="http://xivo.io" title="{releases.SOFT_LABEL}" '
            f'target="_blank">xivo.io</a> for more information')
    if releases.footer_has_copyright(release):
        foot += (f' | &copy; 2006-{time.strftime("%Y")} <a href="http://avencall.com" title="Avencall" '
                 'target="_blank">Avencall</a>')
    return LOGIN_PAGE.format(title=escape(f"XiVO - [{hostname}]"), foot=foot)
