//! Drawing pieces shared by the terminal views. Each is a function returning
//! a ratatui widget or drawing into a `Frame`, with no state of its own: the
//! views keep the state and stay snapshot-testable.

use std::ops::Range;

use ratatui::Frame;
use ratatui::layout::{Alignment, Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Borders, Clear, Paragraph, Sparkline, Table, TableState, Tabs, Wrap};

use crate::FilterInput;

/// A bordered panel titled ` title `: thick and yellow when it has the focus,
/// plain and grey otherwise.
pub fn panel(title: &str, focused: bool) -> Block<'static> {
    let style = if focused { Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD) } else { Style::new().fg(Color::DarkGray) };
    Block::new()
        .borders(Borders::ALL)
        .border_type(if focused { BorderType::Thick } else { BorderType::Plain })
        .border_style(style)
        .title(Span::styled(format!(" {title} "), if focused { style } else { Style::new() }))
}

/// The program's name as a badge at the start of the title line.
pub fn badge(name: &str) -> Span<'static> {
    Span::styled(format!(" {name} "), Style::new().add_modifier(Modifier::BOLD).fg(Color::Black).bg(Color::Cyan))
}

/// A tab bar over `titles` with `selected` highlighted.
pub fn tab_bar<'a>(titles: &[&'a str], selected: usize) -> Tabs<'a> {
    Tabs::new(titles.iter().map(|t| Line::from(*t)).collect::<Vec<_>>())
        .select(selected)
        .style(Style::new().fg(Color::DarkGray))
        .highlight_style(Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD | Modifier::REVERSED))
        .divider("│")
}

/// The bottom line: the filter being typed, or the key `hints` followed by the
/// filter in force and any `extra` spans (notices, errors).
pub fn key_line<'a>(hints: &str, filter: &FilterInput, extra: Vec<Span<'a>>) -> Line<'a> {
    if filter.editing {
        return Line::from(vec![
            Span::styled(" filter: ", Style::new().bold()),
            Span::raw(format!("{}▏", filter.text)),
            Span::raw("  (enter keep · esc clear)"),
        ]);
    }
    let mut spans = vec![Span::raw(format!(" {hints}"))];
    if filter.is_active() {
        spans.push(Span::styled(format!(" · filter \"{}\"", filter.text), Style::new().fg(Color::Yellow)));
    }
    spans.extend(extra);
    Line::from(spans)
}

/// One line of a help overlay: the keys in a column, then what they do.
pub fn help_line(keys: &str, what: &str) -> Line<'static> {
    let pad = 24usize.saturating_sub(Line::raw(keys).width());
    Line::from(format!("  {keys}{}{what}", " ".repeat(pad)))
}

/// A centred help box (up to 60×15) over `area` listing `lines`, closed by any key.
pub fn help_overlay(f: &mut Frame<'_>, area: Rect, lines: Vec<Line<'static>>) {
    let w = area.width.min(60);
    let h = area.height.min(u16::try_from(lines.len() + 6).unwrap_or(u16::MAX).max(15));
    let popup = Rect { x: area.x + (area.width - w) / 2, y: area.y + (area.height - h) / 2, width: w, height: h };
    let mut text = vec![Line::from("")];
    text.extend(lines);
    text.push(Line::from(""));
    text.push(Line::from("  any key closes this help").alignment(Alignment::Center));
    f.render_widget(Clear, popup);
    let b = Block::new().borders(Borders::ALL).border_type(BorderType::Double).title(" Help ").border_style(Style::new().fg(Color::Cyan));
    f.render_widget(Paragraph::new(text).block(b).wrap(Wrap { trim: false }), popup);
}

/// A key-value status panel: the keys in a dim column, the values after them.
pub fn status_panel<'a>(pairs: Vec<(&'a str, Span<'a>)>, block: Block<'a>) -> Paragraph<'a> {
    let width = pairs.iter().map(|(k, _)| Line::raw(*k).width()).max().unwrap_or(0);
    let lines: Vec<Line<'a>> = pairs
        .into_iter()
        .map(|(k, v)| {
            let pad = width - Line::raw(k).width();
            Line::from(vec![Span::styled(format!("{k}{}  ", " ".repeat(pad)), Style::new().fg(Color::DarkGray)), v])
        })
        .collect();
    Paragraph::new(lines).block(block)
}

/// The bold header row style of tables.
pub fn header_style() -> Style {
    Style::new().add_modifier(Modifier::BOLD)
}

/// Draws `table` with row `selected` (an index into its rows) highlighted and
/// scrolled into view.
pub fn selectable_table(f: &mut Frame<'_>, area: Rect, table: Table<'_>, selected: Option<usize>) {
    let table = table.row_highlight_style(Style::new().add_modifier(Modifier::REVERSED)).highlight_symbol("▶ ");
    let mut state = TableState::default().with_selected(selected);
    f.render_stateful_widget(table, area, &mut state);
}

/// Which of `len` lines (oldest first) a tail `visible` lines high shows when
/// scrolled `scroll` lines up from the newest.
pub fn tail_range(len: usize, visible: usize, scroll: usize) -> Range<usize> {
    let end = len.saturating_sub(scroll);
    end.saturating_sub(visible)..end
}

/// A sparkline of `data` (oldest first) in a panel titled with `label`, the
/// newest value and the largest.
pub fn series(f: &mut Frame<'_>, area: Rect, label: &str, data: &[u64], color: Color) {
    let last = data.last().copied().unwrap_or(0);
    let max = data.iter().copied().max().unwrap_or(0);
    let title = format!("{label} · now {last} · max {max}");
    let block = panel(&title, false);
    let inner = block.inner(area);
    f.render_widget(block, area);
    // The newest points on the right: drop what does not fit on the left.
    let fit = usize::from(inner.width);
    let shown = &data[data.len().saturating_sub(fit)..];
    f.render_widget(Sparkline::default().data(shown).max(max.max(1)).style(Style::new().fg(color)), inner);
}

/// A stat tile: a big number with a caption under it, in a plain box; on
/// fewer than 4 rows, one line `value caption`.
pub fn stat_tile(f: &mut Frame<'_>, area: Rect, value: &str, caption: &str, color: Color) {
    let value_span = Span::styled(value.to_owned(), Style::new().fg(color).add_modifier(Modifier::BOLD));
    let caption_span = Span::styled(caption.to_owned(), Style::new().fg(Color::DarkGray));
    if area.height < 4 {
        f.render_widget(Paragraph::new(Line::from(vec![value_span, Span::raw(" "), caption_span])), area);
        return;
    }
    let block = Block::new().borders(Borders::ALL).border_type(BorderType::Rounded).border_style(Style::new().fg(Color::DarkGray));
    let inner = block.inner(area);
    f.render_widget(block, area);
    let [v, c] = Layout::vertical([Constraint::Length(1), Constraint::Length(1)]).areas(inner);
    f.render_widget(Paragraph::new(Line::from(value_span)).alignment(Alignment::Center), v);
    f.render_widget(Paragraph::new(Line::from(caption_span)).alignment(Alignment::Center), c);
}

#[cfg(test)]
mod tests {
    use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;
    use ratatui::widgets::{Cell, Row};

    use super::*;

    fn draw(w: u16, h: u16, f: impl FnOnce(&mut Frame<'_>)) -> Vec<String> {
        let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
        t.draw(f).unwrap();
        let buf = t.backend().buffer().clone();
        (0..h).map(|y| (0..w).map(|x| buf[(x, y)].symbol().to_owned()).collect::<String>()).collect()
    }

    #[test]
    fn panels_show_their_title_and_focus() {
        let screen = draw(20, 3, |f| f.render_widget(panel("Calls", true), f.area()));
        assert_eq!(screen, ["┏ Calls ━━━━━━━━━━━┓", "┃                  ┃", "┗━━━━━━━━━━━━━━━━━━┛"]);
        let screen = draw(20, 3, |f| f.render_widget(panel("Logs", false), f.area()));
        assert_eq!(screen[0], "┌ Logs ────────────┐");
    }

    #[test]
    fn tab_bar_lists_every_tab() {
        let screen = draw(40, 1, |f| f.render_widget(tab_bar(&["Overview", "Backends", "Audit"], 1), f.area()));
        assert_eq!(screen[0].trim_end(), " Overview │ Backends │ Audit");
        let mut t = Terminal::new(TestBackend::new(40, 1)).unwrap();
        t.draw(|f| f.render_widget(tab_bar(&["Overview", "Backends"], 1), f.area())).unwrap();
        let selected = &t.backend().buffer()[(13, 0)];
        assert!(selected.modifier.contains(Modifier::REVERSED), "the selected tab stands out");
    }

    #[test]
    fn key_line_shows_the_filter_being_typed_or_in_force() {
        let mut filter = FilterInput::default();
        let line = |filter: &FilterInput| key_line("q quit", filter, vec![Span::raw(" · paused")]).to_string();
        assert_eq!(line(&filter), " q quit · paused");
        filter.start();
        filter.key(KeyEvent::new(KeyCode::Char('x'), KeyModifiers::NONE));
        assert_eq!(line(&filter), " filter: x▏  (enter keep · esc clear)");
        filter.key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE));
        assert_eq!(line(&filter), " q quit · filter \"x\" · paused");
    }

    #[test]
    fn help_overlay_is_centred_with_aligned_keys() {
        let screen = draw(40, 10, |f| {
            help_overlay(f, f.area(), vec![help_line("q", "quit"), help_line("tab / ← →", "next")]);
        });
        assert_eq!(screen[0], "╔ Help ════════════════════════════════╗");
        assert_eq!(screen[2], "║  q                       quit        ║");
        assert_eq!(screen[3], "║  tab / ← →               next        ║");
        assert!(screen[5].contains("any key closes this help"), "{screen:?}");
        // Centred in a larger area.
        let screen = draw(80, 24, |f| help_overlay(f, f.area(), vec![help_line("q", "quit")]));
        assert!(screen[4].starts_with(&format!("{}╔ Help", " ".repeat(10))), "{screen:?}");
    }

    #[test]
    fn status_panel_aligns_values() {
        let screen = draw(30, 4, |f| {
            let p = status_panel(vec![("health", Span::raw("ready")), ("last error", Span::raw("none"))], panel("fs", false));
            f.render_widget(p, f.area());
        });
        assert_eq!(screen[1], "│health      ready           │");
        assert_eq!(screen[2], "│last error  none            │");
    }

    #[test]
    fn selectable_table_marks_the_selected_row() {
        let screen = draw(20, 4, |f| {
            let rows = vec![Row::new(vec![Cell::from("alpha")]), Row::new(vec![Cell::from("beta")])];
            let t = Table::new(rows, [Constraint::Fill(1)]).header(Row::new(["NAME"]).style(header_style()));
            selectable_table(f, f.area(), t, Some(1));
        });
        assert_eq!(screen[0].trim_end(), "  NAME");
        assert_eq!(screen[1].trim_end(), "  alpha");
        assert_eq!(screen[2].trim_end(), "▶ beta");
    }

    #[test]
    fn tail_range_keeps_the_newest_in_view() {
        assert_eq!(tail_range(10, 4, 0), 6..10);
        assert_eq!(tail_range(10, 4, 3), 3..7);
        assert_eq!(tail_range(10, 4, 20), 0..0);
        assert_eq!(tail_range(2, 4, 0), 0..2);
    }

    #[test]
    fn series_titles_now_and_max_and_draws_bars() {
        let screen = draw(40, 4, |f| series(f, f.area(), "requests", &[0, 1, 8, 4], Color::Green));
        assert!(screen[0].starts_with("┌ requests · now 4 · max 8 "), "{screen:?}");
        // The newest point is drawn, the tallest reaches the top row.
        assert_eq!(screen[1].chars().nth(3), Some('█'), "{screen:?}");
        assert_ne!(screen[2].chars().nth(4), Some(' '), "{screen:?}");
        // An all-zero series draws no bars.
        let screen = draw(20, 4, |f| series(f, f.area(), "errors", &[0, 0], Color::Red));
        assert_eq!(screen[2], "│                  │");
    }

    #[test]
    fn stat_tiles_stack_or_fold_to_one_line() {
        let screen = draw(14, 4, |f| stat_tile(f, f.area(), "12.5/s", "calls/s", Color::Green));
        assert_eq!(screen, ["╭────────────╮", "│   12.5/s   │", "│   calls/s  │", "╰────────────╯"]);
        let screen = draw(20, 1, |f| stat_tile(f, f.area(), "3", "agents", Color::Green));
        assert_eq!(screen[0].trim_end(), "3 agents");
    }
}
