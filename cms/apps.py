from django.apps import AppConfig


class CmsConfig(AppConfig):
    name = "cms"
    verbose_name = "Marketing site"

    def ready(self):
        from django.db.models.signals import post_delete, post_save
        from wagtail.models import Page, Site
        from wagtail.signals import page_published, page_unpublished, post_page_move

        from billing.models import Plan
        from cms.page_cache import page_cache_clear

        # What the cached marketing pages show (cms/page_cache.py): their published revisions, the menu of
        # live pages, the site, and the plans with their prices and limits. A scheduled publish sends
        # page_published too.
        page_signals = (("published", page_published), ("unpublished", page_unpublished), ("moved", post_page_move))
        for name, signal in page_signals:
            signal.connect(page_cache_clear, dispatch_uid=f"page_cache_clear_page_{name}")
        for model in (Page, Site, Plan):
            for name, signal in (("saved", post_save), ("deleted", post_delete)):
                signal.connect(page_cache_clear, sender=model, dispatch_uid=f"page_cache_clear_{model.__name__}_{name}")
