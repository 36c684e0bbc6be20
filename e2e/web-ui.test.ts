// The web UI in Debian's Chromium (playwright-core, headless) against a real control plane
// (TestCloud: facade with its HTTP side, controllers, an agent with QEMU in a network namespace):
// log in, see the Ready node, create a network and a disk, boot a VM from the busybox test disk,
// type into its serial console and read the guest's answer, see its screen over VNC (noVNC), reboot and shut it down watching the
// state change live, and delete everything. A screenshot of each page goes to test-artifacts/web/.
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { TestCloud } from './cloud';
import { buildTestBootDisk } from '../agent/drivers/testing/bootdisk';

jest.setTimeout(900_000);

const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = path.resolve(__dirname, '..', 'test-artifacts', 'web');
export const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-quic', '--no-first-run'];

/** Headless Chromium with a fresh profile; the facade's test CA is not in its trust store. */
export async function launchBrowser(): Promise<{ context: BrowserContext; profile: string }> {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'n0stack-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, ignoreHTTPSErrors: true, viewport: { width: 1280, height: 900 },
  });
  return { context, profile };
}

const built = fs.existsSync(path.resolve(__dirname, '..', 'dist', 'web', 'index.html'));
const maybe = fs.existsSync(CHROMIUM) && built ? describe : describe.skip;
if (!built) process.stderr.write('web-ui.test: dist/web is not built (npm run build); skipped\n');

maybe('web UI in Chromium', () => {
  let cloud: TestCloud;
  let context: BrowserContext;
  let profile: string;
  let page: Page;
  let imageServer: http.Server;
  let imageUrl: string;
  let base: string;
  let shot = 0;
  const screenshot = async (name: string) => {
    await page.screenshot({ path: path.join(ARTIFACTS, `${String(++shot).padStart(2, '0')}-${name}.png`), fullPage: true });
  };
  const row = (table: string, name: string) => page.locator(`[data-testid="table-${table}"] tr[data-name="${name}"]`);
  const dialogs: string[] = [];
  const pageErrors: string[] = [];
  /** Waits for a locator; a timeout says what the page's status line and errors said. */
  const until = async (locator: ReturnType<Page['locator']>, timeout = 30_000, state: 'visible' | 'detached' = 'visible') => {
    try {
      await locator.waitFor({ state, timeout });
    } catch (err) {
      await page.screenshot({ path: path.join(ARTIFACTS, `failed-${Date.now()}.png`), fullPage: true }).catch(() => undefined);
      const flash = await page.getByTestId('flash').textContent().catch(() => '');
      throw new Error(`${(err as Error).message.split('\n')[0]}; the page says: ${JSON.stringify(flash)}; page errors: ${JSON.stringify(pageErrors)}`);
    }
  };

  beforeAll(async () => {
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    const disk = await buildTestBootDisk();
    imageServer = http.createServer((req, res) => {
      if (req.url !== '/guest.qcow2') { res.writeHead(404).end(); return; }
      res.writeHead(200, { 'Content-Length': fs.statSync(disk).size });
      fs.createReadStream(disk).pipe(res);
    });
    await new Promise<void>((r) => imageServer.listen(0, '127.0.0.1', r));
    imageUrl = `http://127.0.0.1:${(imageServer.address() as { port: number }).port}/guest.qcow2`;
    cloud = await TestCloud.start({ store: 'embedded', nodes: ['vm-host1'] });
    base = `https://127.0.0.1:${cloud.api.consoles!.listenPort}`;
    ({ context, profile } = await launchBrowser());
    page = context.pages()[0] ?? await context.newPage();
    // Every create, delete and power action asks first: accept, and remember what was asked.
    page.on('dialog', (d) => { dialogs.push(d.message()); void d.accept(); });
    page.on('pageerror', (err) => pageErrors.push(err.message));
  });
  afterAll(async () => {
    await context?.close().catch(() => undefined);
    if (profile) fs.rmSync(profile, { recursive: true, force: true });
    await cloud?.stop();
    await new Promise((r) => imageServer?.close(r));
  });

  it('logs in with the token, which stays out of the page\'s storage and URL', async () => {
    await page.goto(`${base}/`);
    await until(page.getByTestId('token'));
    await screenshot('login');
    await page.getByTestId('token').fill(cloud.token);
    await page.getByRole('button', { name: 'Log in' }).click();
    await until(page.locator('nav'));
    expect(page.url()).not.toContain(cloud.token);
    // (a string: this file is type-checked without the DOM library)
    expect(await page.evaluate<string>('JSON.stringify({ ...localStorage }) + JSON.stringify({ ...sessionStorage }) + document.cookie')).not.toContain(cloud.token);
    const cookies = await context.cookies(base);
    expect(cookies.find((c) => c.name === 'n0stack_session')).toMatchObject({ httpOnly: true, sameSite: 'Strict', secure: true });
  });

  it('shows the Ready node', async () => {
    await page.getByRole('link', { name: 'Nodes' }).click();
    await until(row('node', 'vm-host1').getByText('Ready', { exact: true }));
    await screenshot('nodes');
  });

  it('creates a network and a disk (fetched busybox boot disk), each after a confirmation', async () => {
    await page.getByRole('link', { name: 'Networks' }).click();
    const net = page.getByTestId('form-new-network');
    await net.locator('input[name=name]').fill('web-net');
    await net.locator('input[name=ipv4_cidr]').fill('192.168.77.0/24');
    await net.getByRole('button', { name: 'Create' }).click();
    await until(row('network', 'web-net').getByText('AVAILABLE'), 60_000);
    expect(dialogs).toContain('Create network web-net?');
    await screenshot('networks');

    await page.getByRole('link', { name: 'Block storages' }).click();
    const bs = page.getByTestId('form-new-block-storage');
    await bs.locator('input[name=name]').fill('web-disk');
    await bs.locator('input[name=size]').fill('1024');
    await bs.locator('input[name=source_url]').fill(imageUrl);
    await bs.getByRole('button', { name: 'Create' }).click();
    await until(row('block_storage', 'web-disk').getByText('AVAILABLE'), 120_000);
    await screenshot('block-storages');
    await page.getByRole('link', { name: 'Images' }).click();
    await until(page.getByTestId('count-image').getByText('(0)'));
    await screenshot('images');
  });

  it('boots a VM from the disk and shows it RUNNING live', async () => {
    await page.getByRole('link', { name: 'VMs' }).click();
    const vm = page.getByTestId('form-new-virtual-machine');
    await vm.locator('input[name=name]').fill('web-vm');
    await vm.locator('input[name=cores]').fill('1');
    await vm.locator('input[name=cpu_request]').fill('100');
    await vm.locator('input[name=memory]').fill('256');
    await vm.locator('input[name=disks]').fill('web-disk');
    await vm.locator('input[name=network]').fill('web-net');
    await vm.getByRole('button', { name: 'Create' }).click();
    // The row appears as soon as the VM is written (PENDING) and turns RUNNING without a reload.
    await until(row('virtual_machine', 'web-vm'), 30_000);
    await until(row('virtual_machine', 'web-vm').getByText('RUNNING'), 300_000);
    await screenshot('vms');
  });

  it('opens the serial console in the browser and talks to the guest', async () => {
    await row('virtual_machine', 'web-vm').getByRole('link', { name: 'web-vm' }).click();
    await until(page.getByTestId('vm-conditions').locator('tbody tr').first());
    // The controllers' Events about the VM (issue [L]), live as well.
    await until(page.getByTestId('vm-events').locator('tbody tr', { hasText: 'Started' }).first(), 60_000);
    await page.getByRole('button', { name: 'Open serial console' }).click();
    await until(page.getByTestId('console-status').getByText('connected'), 30_000);
    const terminal = page.getByTestId('terminal');
    await terminal.click();
    // The guest's shell answers on the serial port; the sum proves the answer is the guest's.
    const deadline = Date.now() + 240_000;
    let text = '';
    while (Date.now() < deadline) {
      await page.keyboard.type('echo N0WEB-$((6*7))\n');
      await page.waitForTimeout(2000);
      text = (await terminal.locator('.xterm-rows').textContent()) ?? '';
      if (text.includes('N0WEB-42')) break;
    }
    expect(text).toContain('N0WEB-42');
    await screenshot('vm-console');
  });

  it('opens the VNC console (noVNC) and draws the guest\'s screen', async () => {
    await page.getByRole('button', { name: 'Open VNC console' }).click();
    await until(page.getByTestId('vnc-status').getByText('connected'), 60_000);
    // noVNC draws into a canvas the size of the guest's framebuffer.
    const size = await page.getByTestId('vnc-screen').locator('canvas').evaluate((c: any) => [c.width, c.height] as number[]);
    expect(size[0]).toBeGreaterThan(0);
    expect(size[1]).toBeGreaterThan(0);
    await page.waitForTimeout(1000);
    await screenshot('vm-vnc');
    await page.getByTestId('vnc-screen').locator('xpath=..').getByRole('button', { name: 'Close' }).click();
  });

  it('reboots and shuts down the VM and shows each state change live', async () => {
    const state = page.getByTestId('vm-state');
    await page.locator('.actions').getByRole('button', { name: 'Reboot' }).click();
    await until(page.getByTestId('flash').getByText('web-vm: reboot done'), 180_000);
    expect(dialogs).toContain('Reboot web-vm?');
    await until(state.getByText('RUNNING'));
    await page.locator('.actions').getByRole('button', { name: 'Shut down' }).click();
    // Not reloaded: the watch brings the new state to the open page.
    await until(state.getByText('SHUTDOWN'), 180_000);
    await screenshot('vm-shutdown');
    await page.locator('.actions').getByRole('button', { name: 'Boot', exact: true }).click();
    await until(state.getByText('RUNNING'), 180_000);
  });

  it('deletes everything, each after a confirmation', async () => {
    await page.locator('.actions').getByRole('button', { name: 'Delete' }).click();
    await page.waitForURL(/#\/vms$/);
    await until(row('virtual_machine', 'web-vm'), 180_000, 'detached');
    await page.getByRole('link', { name: 'Block storages' }).click();
    await row('block_storage', 'web-disk').getByRole('button', { name: 'Delete' }).click();
    await until(row('block_storage', 'web-disk'), 60_000, 'detached');
    await page.getByRole('link', { name: 'Networks' }).click();
    await row('network', 'web-net').getByRole('button', { name: 'Delete' }).click();
    await until(row('network', 'web-net'), 60_000, 'detached');
    await screenshot('deleted');
    expect(dialogs).toEqual(expect.arrayContaining(['Delete virtual machine web-vm?', 'Delete block storage web-disk?', 'Delete network web-net?']));
    expect((await cloud.store.list('VirtualMachine')).items).toHaveLength(0);
    expect((await cloud.store.list('BlockStorage')).items).toHaveLength(0);
    expect((await cloud.store.list('Network')).items).toHaveLength(0);
  });
});
