from django.contrib import admin
from taggit.models import Tag

# taggit's Tag admin has a merge-tags page that checks only is_staff (the role walk in
# tests/test_admin_roles.py found it). Tags are edited in Wagtail, so the Django admin does not offer them.
admin.site.unregister(Tag)
