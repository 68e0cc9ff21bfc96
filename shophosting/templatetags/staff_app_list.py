"""`{% app_list_rendered %}`: Django's admin/app_list.html, rendered once per distinct list and reused.

Every staff page shows the list of models: the index as its "Records", every other page in the navigation
sidebar. Rendered afresh it cost about 10 ms a page (some 40 models, each with links and translated labels),
a quarter of the staff index. What it renders depends only on the list itself (which models, their names and
links, as the user's permissions made them), on whether change links are shown, on which app and model the
current path is in, and on the language: all of it is the cache key, so a list that differs in anything gets
its own rendering. Kept per process, at most CACHE_SIZE renderings (one per role and page kind, in practice).

templates/admin/app_list.html calls this in place of Django's template, which it renders (skipping itself).
"""

from collections import OrderedDict
from threading import Lock

from django import template
from django.template.defaultfilters import urlencode
from django.utils.translation import get_language

register = template.Library()

CACHE_SIZE = 64
_rendered: OrderedDict = OrderedDict()
_lock = Lock()


def _in_path(url, path: str) -> bool:
    return bool(url) and url in path


def _key(context) -> tuple:
    request = context.get("request")
    path = urlencode(request.path) if request is not None else ""  # as the template compares it
    apps = tuple(
        (
            app.get("app_label"),
            app.get("name"),
            app.get("app_url"),
            _in_path(app.get("app_url"), path),
            tuple(
                (
                    model.get("object_name"),
                    str(model.get("name")),
                    model.get("admin_url"),
                    model.get("add_url"),
                    bool(model.get("view_only")),
                    _in_path(model.get("admin_url"), path),
                )
                for model in app.get("models", ())
            ),
        )
        for app in context.get("app_list") or ()
    )
    return (apps, bool(context.get("show_changelinks")), get_language())


class AppListNode(template.Node):
    def render(self, context):
        key = _key(context)
        with _lock:
            html = _rendered.get(key)
            if html is not None:
                _rendered.move_to_end(key)
                return html
        original, _origin = context.template.engine.find_template("admin/app_list.html", skip=[self.origin])
        html = original.render(context)
        with _lock:
            _rendered[key] = html
            while len(_rendered) > CACHE_SIZE:
                _rendered.popitem(last=False)
        return html


@register.tag
def app_list_rendered(parser, token):
    return AppListNode()
