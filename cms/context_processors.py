from django.utils.functional import SimpleLazyObject

from cms.page_cache import fragment_cached


def site_menu(request):
    """The marketing pages marked "show in menus", for the header and footer; read only when a template
    uses it (the admin never does)."""

    def pages():
        from wagtail.models import Site

        site = Site.find_for_request(request)
        if site is None:
            return []
        children = site.root_page.get_children().live().public().in_menu()
        return [{"title": page.title, "url": page.get_url(request)} for page in children]

    # The same for every visitor of this address: computed once per change of the pages (cms/page_cache.py).
    name = f"menu:{request.scheme}://{request.get_host()}"
    return {"site_menu": SimpleLazyObject(lambda: fragment_cached(name, pages))}
