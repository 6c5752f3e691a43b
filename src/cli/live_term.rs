//! Draws the live view (`live_view`) on stderr: lines that scrolled away are
//! printed once, and the live area below them is redrawn in place by moving
//! the cursor up over it and erasing to the end of the screen (VT100 codes
//! every terminal emulator knows). Redraws happen at most every
//! `MIN_REDRAW` (on events, and from a ticker thread so elapsed times
//! advance while nothing happens), and only when the frame changed.

use std::io::Write;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::live_view::LiveView;
use crate::engine::{Event, EventSink};

/// At most ten redraws a second.
const MIN_REDRAW: Duration = Duration::from_millis(100);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What is on the screen.
#[derive(Default)]
struct Screen {
    /// Lines of the live area drawn, the cursor on the line below them.
    drawn: usize,
    last_live: Vec<String>,
    last_draw: Option<Instant>,
}

struct Shared {
    origin: Instant,
    view: Mutex<LiveView>,
    screen: Mutex<Screen>,
}

impl Shared {
    fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    /// Redraws if something changed, unless the last redraw was less than
    /// `MIN_REDRAW` ago and `force` is false (the ticker catches up).
    fn draw(&self, force: bool) {
        let mut screen = lock(&self.screen);
        let at = Instant::now();
        if !force
            && screen
                .last_draw
                .is_some_and(|t| at.duration_since(t) < MIN_REDRAW)
        {
            return;
        }
        let (scrolled, live) = {
            let mut view = lock(&self.view);
            (view.take_scrolled(), view.live(self.now(), width()))
        };
        if scrolled.is_empty() && live == screen.last_live {
            return;
        }
        let out = redraw(screen.drawn, &scrolled, &live);
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(crate::sensitive::redact(&out).as_bytes());
        let _ = err.flush();
        screen.drawn = live.len();
        screen.last_live = live;
        screen.last_draw = Some(at);
    }
}

/// The text that replaces a live area of `drawn` lines (the cursor below
/// it) with the `scrolled` lines, then the new live area.
fn redraw(drawn: usize, scrolled: &[String], live: &[String]) -> String {
    let mut out = String::new();
    if drawn > 0 {
        // Up to the live area's first line, then erase it all.
        out.push_str(&format!("\x1b[{drawn}A\r\x1b[J"));
    }
    for line in scrolled.iter().chain(live) {
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The live view on stderr, with its ticker; erased when dropped.
pub struct LiveTerm {
    shared: Arc<Shared>,
    ticker: Option<(mpsc::Sender<()>, JoinHandle<()>)>,
}

impl LiveTerm {
    /// Starts the ticker; nothing is drawn until something is live.
    pub fn start() -> LiveTerm {
        let shared = Arc::new(Shared {
            origin: Instant::now(),
            view: Mutex::new(LiveView::new()),
            screen: Mutex::new(Screen::default()),
        });
        let (stop, stopped) = mpsc::channel::<()>();
        let ticking = shared.clone();
        let ticker = std::thread::Builder::new()
            .name("meshform-progress".into())
            .spawn(move || {
                // Ends when the sender is dropped.
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(MIN_REDRAW) {
                    ticking.draw(false);
                }
            })
            .ok();
        LiveTerm {
            shared,
            // Without a ticker (no thread could start), events still redraw.
            ticker: ticker.map(|t| (stop, t)),
        }
    }

    /// The sink to give the engine.
    pub fn sink(&self) -> EventSink {
        let shared = self.shared.clone();
        Arc::new(move |event: &Event| {
            let now = shared.now();
            lock(&shared.view).event(event, now);
            shared.draw(false);
        })
    }

    /// Steps start; their first frame is drawn at once.
    pub fn begin_steps(&self, label: &str, total: Option<usize>) {
        let now = self.shared.now();
        lock(&self.shared.view).begin_steps(label, total, now);
        self.shared.draw(true);
    }

    /// Erases the live area and prints the lines still waiting.
    pub fn pause(&self) {
        lock(&self.shared.view).idle();
        self.shared.draw(true);
    }

    /// Prints a line above the live area at once.
    pub fn notifier(&self) -> impl Fn(&str) + Send + Sync + 'static {
        let shared = self.shared.clone();
        move |line: &str| {
            lock(&shared.view).note(line.to_string());
            shared.draw(true);
        }
    }
}

impl Drop for LiveTerm {
    fn drop(&mut self) {
        if let Some((stop, ticker)) = self.ticker.take() {
            drop(stop);
            let _ = ticker.join();
        }
        self.pause();
    }
}

/// The terminal's width in columns, less one: writing the last column
/// makes some terminals wrap early. 80 when it cannot be read.
fn width() -> usize {
    let columns = terminal_columns()
        .or_else(|| std::env::var("COLUMNS").ok()?.parse().ok())
        .filter(|c: &usize| *c > 0)
        .unwrap_or(80);
    columns.saturating_sub(1).max(20)
}

fn terminal_columns() -> Option<usize> {
    let mut size = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one `winsize` into the struct we own; on a
    // descriptor that is not a terminal it fails and writes nothing.
    let r = unsafe { libc::ioctl(libc::STDERR_FILENO, libc::TIOCGWINSZ, &mut size) };
    (r == 0 && size.ws_col > 0).then_some(usize::from(size.ws_col))
}

#[cfg(test)]
mod tests {
    use super::redraw;

    fn lines(l: &[&str]) -> Vec<String> {
        l.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_redraw_erases_the_old_live_area_and_prints_scrolled_lines_above_the_new_one() {
        let first = redraw(0, &[], &lines(&["  vpc  creating  1s", "applying: 0/2 done"]));
        assert_eq!(first, "  vpc  creating  1s\napplying: 0/2 done\n");
        let next = redraw(
            2,
            &lines(&["vpc: created vpc-1 in 2s"]),
            &lines(&["applying: 1/2 done"]),
        );
        assert_eq!(
            next,
            "\x1b[2A\r\x1b[Jvpc: created vpc-1 in 2s\napplying: 1/2 done\n"
        );
        // Clearing: nothing live, nothing left behind.
        assert_eq!(redraw(1, &[], &[]), "\x1b[1A\r\x1b[J");
    }
}
