// Checks of charts/n0stack that need no helm binary or API server (neither can be installed
// here): the chart's CRDs are the top-level ones, values.yaml passes values.schema.json, every
// template renders (hack/helm-lite.ts, the subset of Go templates the chart uses) to well-formed
// YAML of the expected kinds with the values substituted, and the RBAC rules grant every verb
// the code calls on the API server — and nothing beyond what the issue allows.
// Not checked here: that helm itself renders identically (e.g. its toYaml spacing), that a
// real API server accepts the objects, that the pods start (no image is built here).
import * as fs from 'node:fs';
import * as path from 'node:path';
import Ajv from 'ajv';
import YAML from 'yaml';
import { mergeValues, render, type RenderContext } from './helm-lite';
import { PLURALS, KINDS } from '../api/types';

const ROOT = path.resolve(__dirname, '..');
const CHART = path.join(ROOT, 'charts/n0stack');

interface K8sObject { apiVersion: string; kind: string; metadata: { name: string; namespace?: string }; [k: string]: unknown }
interface Rule { apiGroups: string[]; resources: string[]; verbs: string[] }

const defaults = YAML.parse(fs.readFileSync(path.join(CHART, 'values.yaml'), 'utf8')) as Record<string, unknown>;
const chart = YAML.parse(fs.readFileSync(path.join(CHART, 'Chart.yaml'), 'utf8')) as Record<string, unknown>;
const schema = JSON.parse(fs.readFileSync(path.join(CHART, 'values.schema.json'), 'utf8'));
const validateValues = new Ajv({ strict: false, allErrors: true }).compile(schema);

function context(overrides: unknown = {}): RenderContext {
  return {
    Values: mergeValues(defaults, overrides),
    Release: { Name: 'rel', Namespace: 'n0-system', Service: 'Helm' },
    Chart: { Name: chart.name, Version: chart.version, AppVersion: chart.appVersion },
  };
}

function renderAll(overrides: unknown = {}): { objects: K8sObject[]; notes: string } {
  const ctx = context(overrides);
  const objects: K8sObject[] = [];
  let notes = '';
  for (const file of fs.readdirSync(path.join(CHART, 'templates')).sort()) {
    const out = render(fs.readFileSync(path.join(CHART, 'templates', file), 'utf8'), ctx);
    expect(out).not.toContain('{{');
    if (file === 'NOTES.txt') { notes = out; continue; }
    for (const doc of YAML.parseAllDocuments(out)) {
      expect(doc.errors.map((e) => `${file}: ${e.message}`)).toEqual([]);
      const obj = doc.toJS() as K8sObject | null;
      if (obj) objects.push(obj);
    }
  }
  return { objects, notes };
}

const find = (objects: K8sObject[], kind: string, name: string) => {
  const obj = objects.find((o) => o.kind === kind && o.metadata.name === name);
  if (!obj) throw new Error(`no ${kind} ${name} among ${objects.map((o) => `${o.kind}/${o.metadata.name}`).join(', ')}`);
  return obj as K8sObject & { spec: any; rules: Rule[]; roleRef: any; subjects: any[] };
};

describe('charts/n0stack', () => {
  it('ships exactly the top-level CRDs', () => {
    const top = fs.readdirSync(path.join(ROOT, 'crds')).filter((f) => f.endsWith('.yaml')).sort();
    const ours = fs.readdirSync(path.join(CHART, 'crds')).sort();
    expect(ours).toEqual(top);
    for (const f of top) expect(fs.readFileSync(path.join(CHART, 'crds', f), 'utf8')).toBe(fs.readFileSync(path.join(ROOT, 'crds', f), 'utf8'));
  });

  it('values.yaml passes values.schema.json, which refuses bad values', () => {
    expect(validateValues(defaults)).toBe(true);
    expect((defaults.controllers as { replicas: number }).replicas).toBeGreaterThanOrEqual(2);
    for (const bad of [{ store: 'etcd' }, { controllers: { replicas: 0 } }, { controllers: { leaseSeconds: 1 } }, { mtlsSecretName: 'Bad_Name' }, { agents: { endpoints: [{ cidr: 'host', port: 1 }] } }, { typo: 1 }]) {
      expect({ bad, valid: validateValues(mergeValues(defaults, bad)) }).toEqual({ bad, valid: false });
    }
  });

  it('renders well-formed objects of the expected kinds with the values substituted', () => {
    const { objects, notes } = renderAll({ image: { tag: '9.9.9' }, controllers: { replicas: 3, leaseSeconds: 7 }, api: { replicas: 4 }, mtlsSecretName: 'my-pki', tokenSecretName: 'my-token' });
    expect(objects.map((o) => `${o.kind}/${o.metadata.name}`).sort()).toEqual([
      'ClusterRole/rel-agent', 'ClusterRole/rel-documents',
      'ClusterRoleBinding/rel-agent', 'ClusterRoleBinding/rel-api-documents', 'ClusterRoleBinding/rel-controllers-documents',
      'Deployment/rel-api', 'Deployment/rel-controllers',
      'Role/rel-api-secrets', 'Role/rel-events-reader', 'Role/rel-leader-election',
      'RoleBinding/rel-api-events-reader', 'RoleBinding/rel-api-secrets', 'RoleBinding/rel-controllers-leader-election',
      'Service/rel-api',
      'ServiceAccount/rel-agent', 'ServiceAccount/rel-api', 'ServiceAccount/rel-controllers',
    ]);
    for (const o of objects) {
      expect(o.apiVersion).toMatch(/^(v1|apps\/v1|rbac\.authorization\.k8s\.io\/v1|networking\.k8s\.io\/v1|admissionregistration\.k8s\.io\/v1)$/);
      if (!o.kind.startsWith('Cluster')) expect(o.metadata.namespace).toBe('n0-system');
    }
    const controllers = find(objects, 'Deployment', 'rel-controllers');
    expect(controllers.spec.replicas).toBe(3);
    const c = controllers.spec.template.spec.containers[0];
    expect(c.image).toBe('localhost/n0stack:9.9.9'); // hack/build-image.sh's image
    expect(c.args.slice(0, 3)).toEqual(['controllers', '--store', 'kubernetes']);
    expect(c.args).toEqual(expect.arrayContaining(['--leader-elect', '--pki-dir', '/etc/n0stack/pki']));
    expect(c.args[c.args.indexOf('--leader-elect-lease-seconds') + 1]).toBe('7');
    expect(c.resources).toEqual({ requests: { cpu: '100m', memory: '128Mi' }, limits: { memory: '512Mi' } });
    expect(controllers.spec.template.spec.volumes[0].secret.secretName).toBe('my-pki');
    expect(controllers.spec.template.spec.serviceAccountName).toBe('rel-controllers');
    expect(controllers.spec.selector.matchLabels).toEqual(expect.objectContaining({ 'app.kubernetes.io/component': 'controllers' }));

    const api = find(objects, 'Deployment', 'rel-api');
    expect(api.spec.replicas).toBe(4);
    const a = api.spec.template.spec.containers[0];
    expect(a.args.slice(0, 3)).toEqual(['api', '--store', 'kubernetes']);
    expect(a.args).toEqual(expect.arrayContaining(['--listen', '0.0.0.0:20180', '--token-file', '/etc/n0stack/token/token']));
    expect(api.spec.template.spec.volumes.map((v: any) => v.secret.secretName)).toEqual(['my-pki', 'my-token']);
    const svc = find(objects, 'Service', 'rel-api');
    expect(svc.spec.selector).toEqual({ 'app.kubernetes.io/instance': 'rel', 'app.kubernetes.io/component': 'api' });
    expect(api.spec.template.metadata.labels).toEqual(expect.objectContaining(svc.spec.selector));
    expect(svc.spec.ports.map((p: any) => p.port)).toEqual([20180, 20182]);
    expect(notes).toContain('kubectl -n n0-system port-forward svc/rel-api 20180:20180');
    expect(notes).toContain('create secret generic my-pki');
  });

  it('renders the NetworkPolicy with one egress rule per agent endpoint when enabled', () => {
    expect(renderAll().objects.some((o) => o.kind === 'NetworkPolicy')).toBe(false);
    const { objects, notes } = renderAll({ networkPolicy: { enabled: true }, agents: { endpoints: [{ cidr: '192.0.2.10/32', port: 20181 }, { cidr: '192.0.2.11/32', port: 20181 }] } });
    const np = find(objects, 'NetworkPolicy', 'rel-egress');
    expect(np.spec.egress.slice(2)).toEqual([
      { to: [{ ipBlock: { cidr: '192.0.2.10/32' } }], ports: [{ protocol: 'TCP', port: 20181 }] },
      { to: [{ ipBlock: { cidr: '192.0.2.11/32' } }], ports: [{ protocol: 'TCP', port: 20181 }] },
    ]);
    expect(notes).toContain('192.0.2.10/32:20181 192.0.2.11/32:20181');
  });

  it('RBAC grants every verb the code calls on the API server, and no more than allowed', () => {
    // Each client-node call in the code, as the verb and resource it needs.
    const CALLS: Record<string, { group: string; resource: 'documents' | 'documents/status' | 'leases' | 'events' | 'secrets'; verb: string; by?: 'api' }> = {
      getClusterCustomObject: { group: 'n0stack.io', resource: 'documents', verb: 'get' },
      listClusterCustomObject: { group: 'n0stack.io', resource: 'documents', verb: 'list' },
      createClusterCustomObject: { group: 'n0stack.io', resource: 'documents', verb: 'create' },
      replaceClusterCustomObject: { group: 'n0stack.io', resource: 'documents', verb: 'update' },
      replaceClusterCustomObjectStatus: { group: 'n0stack.io', resource: 'documents/status', verb: 'update' },
      patchClusterCustomObject: { group: 'n0stack.io', resource: 'documents', verb: 'patch' },
      patchClusterCustomObjectStatus: { group: 'n0stack.io', resource: 'documents/status', verb: 'patch' },
      deleteClusterCustomObject: { group: 'n0stack.io', resource: 'documents', verb: 'delete' },
      readNamespacedLease: { group: 'coordination.k8s.io', resource: 'leases', verb: 'get' },
      createNamespacedLease: { group: 'coordination.k8s.io', resource: 'leases', verb: 'create' },
      replaceNamespacedLease: { group: 'coordination.k8s.io', resource: 'leases', verb: 'update' },
      Watch: { group: 'n0stack.io', resource: 'documents', verb: 'watch' },
      // The recorder (controllers) creates and patches Events; the facade lists them.
      createNamespacedEvent: { group: '', resource: 'events', verb: 'create' },
      patchNamespacedEvent: { group: '', resource: 'events', verb: 'patch' },
      listNamespacedEvent: { group: '', resource: 'events', verb: 'list', by: 'api' },
      createNamespacedSecret: { group: '', resource: 'secrets', verb: 'create', by: 'api' },
      readNamespacedSecret: { group: '', resource: 'secrets', verb: 'get', by: 'api' },
      listNamespacedSecret: { group: '', resource: 'secrets', verb: 'list', by: 'api' },
      deleteNamespacedSecret: { group: '', resource: 'secrets', verb: 'delete', by: 'api' },
    };
    const used = new Set<string>();
    for (const file of ['api/store/kubernetes.ts', 'api/store/kubernetes-events.ts', 'api/store/kubernetes-secrets.ts', 'controllers/leader-kubernetes.ts']) {
      const src = fs.readFileSync(path.join(ROOT, file), 'utf8');
      for (const m of src.matchAll(/this\.api\.(\w+)\(/g)) used.add(m[1]);
      if (/new Watch\(/.test(src)) used.add('Watch');
    }
    expect([...used].filter((m) => !CALLS[m])).toEqual([]); // a new call needs a line above (and maybe a rule)
    expect(used.size).toBeGreaterThanOrEqual(12);

    const { objects } = renderAll();
    const rulesOf = (roleKind: string, binding: K8sObject & { roleRef: any }) => find(objects, roleKind, binding.roleRef.name).rules;
    const granted = (sa: string): Rule[] => objects
      .filter((o): o is K8sObject & { roleRef: any; subjects: any[] } => (o.kind === 'ClusterRoleBinding' || o.kind === 'RoleBinding') && (o as any).subjects.some((s: any) => s.kind === 'ServiceAccount' && s.name === sa && s.namespace === 'n0-system'))
      .flatMap((b) => rulesOf(b.roleRef.kind, b));
    const allows = (rules: Rule[], group: string, resource: string, verb: string) => rules.some((r) => r.apiGroups.includes(group) && r.resources.includes(resource) && r.verbs.includes(verb));
    const plurals = KINDS.map((k) => PLURALS[k]);
    const controllers = granted('rel-controllers');
    for (const name of used) {
      const { group, resource, verb, by } = CALLS[name];
      const resources = resource === 'documents' ? plurals : resource === 'documents/status' ? plurals.map((p) => `${p}/status`) : [resource];
      const rules = by === 'api' ? granted('rel-api') : controllers;
      for (const r of resources) expect({ call: name, r, verb, allowed: allows(rules, group, r, verb) }).toEqual({ call: name, r, verb, allowed: true });
    }
    // The facade needs the documents but not the Lease; the agent only its Node.
    const api = granted('rel-api');
    expect(allows(api, 'n0stack.io', 'virtualmachines', 'create')).toBe(true);
    expect(allows(api, 'coordination.k8s.io', 'leases', 'update')).toBe(false);
    const agent = granted('rel-agent');
    expect(allows(agent, 'n0stack.io', 'nodes', 'update') && allows(agent, 'n0stack.io', 'nodes/status', 'update')).toBe(true);
    expect(allows(agent, 'n0stack.io', 'virtualmachines', 'get')).toBe(false);
    // The console ticket key is the facade's alone.
    expect(allows(controllers, '', 'secrets', 'get') || allows(agent, '', 'secrets', 'get')).toBe(false);

    // Least privilege: no wildcards, and nothing outside what the issue lists.
    const allowed: Record<string, string[]> = {
      'n0stack.io': ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete'],
      'n0stack.io/status': ['get', 'update', 'patch'],
      'coordination.k8s.io': ['get', 'create', 'update'],
      '': ['create', 'patch', 'get', 'list', 'delete'],
    };
    for (const o of objects.filter((x) => x.kind === 'ClusterRole' || x.kind === 'Role')) {
      for (const rule of (o as unknown as { rules: Rule[] }).rules) {
        expect([...rule.apiGroups, ...rule.resources, ...rule.verbs]).not.toContain('*');
        for (const g of rule.apiGroups) {
          for (const r of rule.resources) {
            const key = g === 'n0stack.io' && r.endsWith('/status') ? 'n0stack.io/status' : g;
            expect(allowed[key]).toBeDefined();
            for (const v of rule.verbs) expect({ role: o.metadata.name, g, r, v, ok: allowed[key].includes(v) }).toEqual({ role: o.metadata.name, g, r, v, ok: true });
            if (g === '') expect(['events', 'secrets']).toContain(r);
            if (g === 'coordination.k8s.io') expect(r).toBe('leases');
          }
        }
      }
    }
  });

  it('renders the admission webhook when enabled: every kind, not status, to the facade\'s /admission/validate, failing closed', () => {
    expect(renderAll().objects.some((o) => o.kind === 'ValidatingWebhookConfiguration')).toBe(false);
    const { objects } = renderAll({ admissionWebhook: { enabled: true, caBundle: 'Q0E=' } });
    const [hook] = (find(objects, 'ValidatingWebhookConfiguration', 'rel-validate') as any).webhooks;
    expect(hook).toMatchObject({ name: 'validate.n0stack.io', failurePolicy: 'Fail', sideEffects: 'None', admissionReviewVersions: ['v1'], timeoutSeconds: 5 });
    expect(hook.clientConfig).toEqual({ service: { name: 'rel-api', namespace: 'n0-system', port: 20182, path: '/admission/validate' }, caBundle: 'Q0E=' });
    expect(hook.rules).toEqual([{ apiGroups: ['n0stack.io'], apiVersions: ['v1alpha1'], operations: ['CREATE', 'UPDATE', 'DELETE'], resources: KINDS.map((k) => PLURALS[k]), scope: 'Cluster' }]);
    // The facade's and controllers' own writes pass unjudged: the facade's args name their service accounts.
    const a = find(objects, 'Deployment', 'rel-api').spec.template.spec.containers[0];
    expect(a.args[a.args.indexOf('--admission-trusted-users') + 1]).toBe('system:serviceaccount:n0-system:rel-api,system:serviceaccount:n0-system:rel-controllers');
  });

  it('the mini renderer refuses template constructs it does not implement', () => {
    expect(() => render('{{ include "x" . }}', context())).toThrow(/unsupported/);
    expect(() => render('{{ .Values.nope.deeper }}', context())).toThrow(/cannot read/);
    expect(() => render('{{- if .Values.store }}x', context())).toThrow(/missing \{\{ end \}\}/);
    expect(render('a\n  {{- if .Values.networkPolicy.enabled }}x{{- else }}y{{- end }}\n', context())).toBe('ay\n');
  });
});
