// Drives the page in headless Chromium for tests/e2e/test_browser.py, which makes the checks:
// this script acts like a person at the page and reports what the page showed, as JSON on its
// last line of stdout.
//
//   node web/test/drive.mjs '<json>'   {scenario, url, chromium, wav, artifacts, ...}
//
// Scenarios:
//   talk         Start with the microphone off, wait for the greeting, turn the microphone on
//                from the keyboard (the fake microphone plays `wav`), wait for the user's turn
//                and the reply, turn it off, then chat by text. Meanwhile the avatar's <video> is
//                sampled (overall and mouth brightness, frames decoded, the agent state shown).
//   no-agent     Start; report the alert shown while no agent joins.
//   unreachable  Start while requests to /token are refused; report the alert.
import { chromium } from "playwright-core";
import { join } from "node:path";

const options = JSON.parse(process.argv[2]);
const timeout = options.timeout_ms ?? 60_000;
const report = { console_errors: [], screenshots: [] };

const browser = await chromium.launch({
  executablePath: options.chromium,
  headless: true,
  args: [
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    `--use-file-for-fake-audio-capture=${options.wav}`,
    "--autoplay-policy=no-user-gesture-required",
    "--allow-loopback-in-peer-connection",
  ],
});

async function screenshot(page, name) {
  const path = join(options.artifacts, `${name}.png`);
  await page.screenshot({ path });
  report.screenshots.push(path);
  return path;
}

// The transcript as shown: who, words, final.
function transcriptOf(page) {
  return page.$$eval("#transcript li", (items) =>
    items.map((li) => ({
      who: li.className,
      label: li.querySelector(".who")?.textContent ?? "",
      text: li.querySelector(".words")?.textContent ?? "",
      final: li.dataset.final === "true",
    })),
  );
}

async function waitForEntry(page, who, text) {
  await page.waitForFunction(
    ([who, text]) =>
      [...document.querySelectorAll(`#transcript li.${who}`)].some(
        (li) => li.dataset.final === "true" && li.querySelector(".words")?.textContent?.includes(text),
      ),
    [who, text],
    { timeout },
  );
}

// In the page: every `interval` ms, the video's mean luma overall and in the mouth's box (the
// placeholder's 512x512 picture: rows 312-372, columns 216-296), frames decoded, agent state.
function startSampling(interval) {
  const video = document.getElementById("avatar");
  const canvas = document.createElement("canvas");
  canvas.width = canvas.height = 128;
  const context = canvas.getContext("2d", { willReadFrequently: true });
  const mean = (x0, y0, x1, y1) => {
    const { data } = context.getImageData(x0, y0, x1 - x0, y1 - y0);
    let sum = 0;
    for (let i = 0; i < data.length; i += 4) sum += 0.299 * data[i] + 0.587 * data[i + 1] + 0.114 * data[i + 2];
    return sum / (data.length / 4);
  };
  window.__samples = [];
  window.__sampler = setInterval(() => {
    if (video.readyState < 2 || !video.videoWidth) return;
    context.drawImage(video, 0, 0, 128, 128);
    window.__samples.push({
      t: performance.now(),
      luma: mean(0, 0, 128, 128),
      mouth: mean(54, 78, 74, 93),
      frames: video.getVideoPlaybackQuality().totalVideoFrames,
      width: video.videoWidth,
      height: video.videoHeight,
      state: document.getElementById("agent-state").dataset.state,
    });
  }, interval);
}

async function talk(page) {
  await page.goto(`${options.url}/?mic=off&agent_timeout=60`);
  await page.getByRole("button", { name: "Start" }).click();
  await page.waitForSelector('#agent-state:not([data-state="absent"])', { timeout });
  report.status_after_join = await page.textContent("#status");
  await waitForEntry(page, "agent", options.greeting);
  await page.waitForFunction(() => document.getElementById("avatar").videoWidth > 0, null, { timeout });
  await page.evaluate(startSampling, 40);
  report.mic_before = await page.getAttribute("#mic", "aria-pressed");

  // the microphone from the keyboard: Tab to the button, Space presses it
  await page.focus("#leave");
  for (let i = 0; i < 5 && !(await page.evaluate(() => document.activeElement?.id === "mic")); i++) {
    await page.keyboard.press("Tab");
  }
  await page.keyboard.press("Space");
  await page.waitForSelector('#mic[aria-pressed="true"]', { timeout });
  report.mic_on = await page.textContent("#mic");
  const levels = [];
  const levelTimer = setInterval(async () => {
    levels.push(await page.$eval("#mic-level", (m) => m.value).catch(() => 0));
  }, 100);
  await waitForEntry(page, "user", options.user_text);
  clearInterval(levelTimer);
  report.mic_levels = levels;

  // a picture of the avatar talking, for the docs: while the reply plays
  await page.waitForSelector('#agent-state[data-state="speaking"]', { timeout });
  await page.waitForTimeout(options.speaking_screenshot_delay_ms ?? 600);
  report.speaking_screenshot = await screenshot(page, "talk-speaking");
  await waitForEntry(page, "agent", options.reply);
  await page.waitForSelector('#agent-state[data-state="listening"]', { timeout });
  await page.waitForTimeout(1000);
  await page.keyboard.press("Space"); // the button still has the focus
  await page.waitForSelector('#mic[aria-pressed="false"]', { timeout });
  report.samples = await page.evaluate(() => {
    clearInterval(window.__sampler);
    return window.__samples;
  });

  await page.fill("#chat-input", options.chat_text);
  await page.press("#chat-input", "Enter");
  await waitForEntry(page, "agent", options.chat_reply);
  report.transcript = await transcriptOf(page);
  await screenshot(page, "talk-end");
  // a phone-sized window: everything still fits side by side stacked, nothing scrolls sideways
  await page.setViewportSize({ width: 390, height: 844 });
  report.phone_overflow = await page.evaluate(
    () => document.documentElement.scrollWidth > document.documentElement.clientWidth,
  );
  await screenshot(page, "talk-phone");
}

async function noAgent(page) {
  await page.goto(`${options.url}/?agent_timeout=${options.agent_timeout}`);
  await page.getByRole("button", { name: "Start" }).click();
  await page.waitForSelector("#leave:not([hidden])", { timeout });
  const connected = Date.now();
  report.status_connected = await page.textContent("#status");
  await page.waitForSelector("#alert:not([hidden])", { timeout });
  report.alert_after_s = (Date.now() - connected) / 1000;
  report.alert = await page.textContent("#alert");
  report.alert_role = await page.getAttribute("#alert", "role");
  report.status = await page.textContent("#status");
  await screenshot(page, "no-agent");
}

async function unreachable(page) {
  await page.route("**/token", (route) => route.abort("connectionrefused"));
  await page.goto(`${options.url}/`);
  await page.getByRole("button", { name: "Start" }).click();
  await page.waitForSelector("#alert:not([hidden])", { timeout });
  report.alert = await page.textContent("#alert");
  report.status = await page.textContent("#status");
  report.start_enabled = await page.isEnabled("#start");
  await screenshot(page, "unreachable");
}

const scenarios = { talk, "no-agent": noAgent, unreachable };
try {
  const context = await browser.newContext({ viewport: { width: 1100, height: 760 } });
  const page = await context.newPage();
  page.on("console", (message) => {
    if (message.type() === "error") report.console_errors.push(message.text());
  });
  page.on("pageerror", (error) => report.console_errors.push(String(error)));
  try {
    await scenarios[options.scenario](page);
  } catch (error) {
    report.error = String(error);
    report.transcript ??= await transcriptOf(page).catch(() => []);
    report.status ??= await page.textContent("#status").catch(() => null);
    report.alert ??= await page.textContent("#alert").catch(() => null);
    await screenshot(page, `${options.scenario}-failed`).catch(() => {});
  }
} finally {
  await browser.close();
}
console.log(JSON.stringify(report));
