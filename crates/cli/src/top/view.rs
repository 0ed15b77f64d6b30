//! Drawing `ringfeed top`: the ratatui frame, and the plain table `--once` prints.

use super::model::{cells, Column, Row, Snapshot, Sort};
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Modifier, Style, Stylize};
use ratatui::text::Line;
use ratatui::widgets::{Cell, Paragraph, Row as TableRow, Table};
use ratatui::Frame;
use std::fmt::Write as _;

/// What the title and the hint need besides the rows.
pub struct Header<'a> {
    /// The latest snapshot (for the daemon's state).
    pub snapshot: &'a Snapshot,
    /// Refresh interval, ms.
    pub interval_ms: u64,
    /// Current sort.
    pub sort: Sort,
}

/// The first line: what is shown, from where, and how it is sorted.
pub fn title(h: &Header<'_>, rows: usize) -> String {
    let dir = ringfeed_shm::shm_dir();
    let daemon = match &h.snapshot.daemon {
        None => "no daemon".to_string(),
        Some(Ok(sock)) => format!("daemon {sock}"),
        Some(Err(e)) => format!("daemon unreachable: {e}"),
    };
    format!(
        "ringfeed top - {rows} rings in {} - {daemon} - every {} ms - sort: {}",
        dir.display(),
        h.interval_ms,
        h.sort.describe()
    )
}

/// What an empty table says.
pub fn empty_hint() -> String {
    format!(
        "no rings in {}: rings appear here once a writer creates one (ringfeed serve, \
         Writer::create, ringfeed.Writer); RINGFEED_SHM_DIR selects another directory",
        ringfeed_shm::shm_dir().display()
    )
}

/// One header cell, with the sort arrow on the sorted column.
fn header_cell(c: Column, sort: Sort) -> String {
    if c == sort.column {
        format!("{}{}", c.title(), if sort.ascending() { "▲" } else { "▼" })
    } else {
        c.title().to_string()
    }
}

fn widths() -> [Constraint; 9] {
    [
        Constraint::Min(24),
        Constraint::Length(14),
        Constraint::Length(9),
        Constraint::Length(8),
        Constraint::Length(8),
        Constraint::Length(8),
        Constraint::Length(7),
        Constraint::Length(13),
        Constraint::Length(7),
    ]
}

/// Draws one frame.
pub fn draw(f: &mut Frame<'_>, h: &Header<'_>, rows: &[Row]) {
    let [top, body, foot] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(1),
        Constraint::Length(1),
    ])
    .areas(f.area());
    f.render_widget(
        Paragraph::new(title(h, rows.len())).style(Style::new().add_modifier(Modifier::REVERSED)),
        top,
    );
    let head = TableRow::new(Column::ALL.map(|c| {
        let cell = Cell::from(header_cell(c, h.sort));
        if c == h.sort.column {
            cell.bold().underlined()
        } else {
            cell.bold()
        }
    }));
    let body_rows = rows.iter().map(|r| {
        let row = TableRow::new(cells(r));
        if r.sample.writer == super::model::Liveness::Gone || r.sample.note.is_some() {
            row.dim()
        } else {
            row
        }
    });
    let table = Table::new(body_rows, widths())
        .header(head)
        .column_spacing(1);
    if rows.is_empty() {
        let [t, hint] = Layout::vertical([Constraint::Length(2), Constraint::Min(1)]).areas(body);
        f.render_widget(table, t);
        f.render_widget(
            Paragraph::new(empty_hint()).wrap(ratatui::widgets::Wrap { trim: true }),
            hint,
        );
    } else {
        f.render_widget(table, body);
    }
    f.render_widget(
        Line::from("q quit   s/S sort by next/previous column   r reverse").dim(),
        foot,
    );
}

/// The plain table of `--once`: a header line, then one line per ring; cells
/// are single words, so the output splits on whitespace. Notes follow the table.
pub fn plain(h: &Header<'_>, rows: &[Row]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{}", title(h, rows.len()));
    let table: Vec<[String; 9]> = std::iter::once(Column::ALL.map(|c| header_cell(c, h.sort)))
        .chain(rows.iter().map(cells))
        .collect();
    let mut w = [0usize; 9];
    for r in &table {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    for r in &table {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            let pad = w[i] - c.chars().count();
            if i < 2 {
                let _ = write!(line, "{c}{} ", " ".repeat(pad));
            } else {
                let _ = write!(line, "{}{c} ", " ".repeat(pad));
            }
        }
        let _ = writeln!(s, "{}", line.trim_end());
    }
    if rows.is_empty() {
        let _ = writeln!(s, "{}", empty_hint());
    }
    for r in rows {
        if let Some(n) = &r.sample.note {
            let _ = writeln!(s, "{}: {n}", r.sample.name);
        }
    }
    s
}
