//! A run's report as the bundled page shows it (`GET /api/reports/{id}.html`): the markdown the
//! reporting agent wrote, rendered as CommonMark with tables (pulldown-cmark), then sanitised
//! (ammonia), so the fragment holds no script, no event-handler attribute, no `style` and no
//! `javascript:` link whatever the user's data put into the report. The page inserts only
//! this; it never builds HTML from user strings itself.

/// `markdown` as a sanitised HTML fragment. CPU work in proportion to the report (megabytes
/// for tens of thousands of workloads): call it on the blocking pool.
pub fn report_html(markdown: &str) -> String {
    let options = pulldown_cmark::Options::ENABLE_TABLES;
    let parser = pulldown_cmark::Parser::new_ext(markdown, options);
    let mut html = String::with_capacity(markdown.len() + markdown.len() / 2);
    pulldown_cmark::html::push_html(&mut html, parser);
    ammonia::clean(&html)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_and_headings_render_and_markup_from_data_does_not() {
        let md = "# Report\n\n| model | spend |\n|---|---:|\n| gpt-4o | $1.00 |\n\n\
                  <script>alert(1)</script> <img src=x onerror=alert(1)> \
                  <a href=\"javascript:alert(2)\">a</a> \
                  <p style=\"color:red\" onclick=\"x()\">styled</p>\n\n\
                  A [link](javascript:alert(1)) and [another](JaVaScRiPt:alert(3)).\n";
        let html = report_html(md);
        assert!(html.contains("<h1>Report</h1>"), "{html}");
        assert!(
            html.contains("<table>") && html.contains("<td>gpt-4o</td>"),
            "{html}"
        );
        let lower = html.to_ascii_lowercase();
        for banned in [
            "<script",
            "alert(1)</",
            "onerror",
            "onclick",
            "href=\"javascript",
            "style=",
        ] {
            assert!(!lower.contains(banned), "{banned} in {html}");
        }
        // The text of a stripped element is kept as text, nothing runs; a link keeps its
        // words without its target.
        assert!(html.contains("styled"), "{html}");
        assert!(
            html.contains(">link</a>") && html.contains(">another</a>"),
            "{html}"
        );
    }

    #[test]
    fn escaped_markup_stays_text() {
        let html = report_html(r"a model named \<script\>alert(1)\</script\>");
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{html}"
        );
    }
}
