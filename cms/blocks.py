"""The marketing pages' sections: a small, named set that editors combine in any order."""

from wagtail import blocks


class TextSectionBlock(blocks.StructBlock):
    heading = blocks.CharBlock(required=False, max_length=120)
    body = blocks.RichTextBlock(features=["bold", "italic", "link", "ul", "ol", "h3"])

    class Meta:
        icon = "doc-full"
        template = "cms/blocks/text_section.html"
        label = "Text"


class StatsBlock(blocks.StructBlock):
    items = blocks.ListBlock(
        blocks.StructBlock(
            [("value", blocks.CharBlock(max_length=20)), ("label", blocks.CharBlock(max_length=60))],
            label="Figure",
        ),
        min_num=1,
        max_num=6,
    )

    class Meta:
        icon = "order"
        template = "cms/blocks/stats.html"
        label = "Figures"


class FeatureGridBlock(blocks.StructBlock):
    heading = blocks.CharBlock(required=False, max_length=120)
    items = blocks.ListBlock(
        blocks.StructBlock(
            [("title", blocks.CharBlock(max_length=80)), ("text", blocks.TextBlock(max_length=400))],
            label="Feature",
        ),
        min_num=1,
    )

    class Meta:
        icon = "list-ul"
        template = "cms/blocks/feature_grid.html"
        label = "Features"


class TestimonialsBlock(blocks.StructBlock):
    heading = blocks.CharBlock(required=False, max_length=120)
    items = blocks.ListBlock(
        blocks.StructBlock(
            [
                ("quote", blocks.TextBlock(max_length=600)),
                ("name", blocks.CharBlock(max_length=80)),
                ("role", blocks.CharBlock(max_length=120, required=False)),
            ],
            label="Testimonial",
        ),
        min_num=1,
    )

    class Meta:
        icon = "openquote"
        template = "cms/blocks/testimonials.html"
        label = "Testimonials"


class CallToActionBlock(blocks.StructBlock):
    heading = blocks.CharBlock(max_length=120)
    text = blocks.TextBlock(required=False, max_length=400)
    button_label = blocks.CharBlock(max_length=40)
    button_link = blocks.CharBlock(
        max_length=200, help_text="A path on this site (/pricing/) or a full https:// address."
    )

    class Meta:
        icon = "pick"
        template = "cms/blocks/call_to_action.html"
        label = "Call to action"


class FaqBlock(blocks.StructBlock):
    heading = blocks.CharBlock(required=False, max_length=120)
    items = blocks.ListBlock(
        blocks.StructBlock(
            [
                ("question", blocks.CharBlock(max_length=200)),
                ("answer", blocks.RichTextBlock(features=["bold", "link"])),
            ],
            label="Question",
        ),
        min_num=1,
    )

    class Meta:
        icon = "help"
        template = "cms/blocks/faq.html"
        label = "Questions and answers"


class SectionsBlock(blocks.StreamBlock):
    text = TextSectionBlock()
    figures = StatsBlock()
    features = FeatureGridBlock()
    testimonials = TestimonialsBlock()
    call_to_action = CallToActionBlock()
    faq = FaqBlock()
