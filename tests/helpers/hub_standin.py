""" A minimal local stand-in for the Hugging Face Hub's HTTP API, for upload tests.

Nothing offline accepts uploads, so this implements just the endpoints huggingface_hub 2.4.0 calls for
`HfApi.create_repo`, `file_exists` and `upload_folder` without hf_xet (read from its sources):

* POST /api/repos/create                               (409 when the repo exists; create_repo(exist_ok) accepts it)
* GET /api/models/{repo}                              (repo_info: create_repo(exist_ok) asks it after a 401/403)
* HEAD|GET /{repo}/resolve/{rev}/{path}                (X-Error-Code RepoNotFound / RevisionNotFound / EntryNotFound)
* POST /api/validate-yaml                              (README front matter must be a YAML mapping)
* POST /api/models/{repo}/preupload/{rev}              (upload mode: lfs for weights files, as the Hub's .gitattributes)
* POST /{repo}.git/info/lfs/objects/batch, PUT and POST verify on /_lfs/{oid}   (basic LFS transfer)
* POST /api/models/{repo}/commit/{rev}                 (NDJSON: header, file (base64), lfsFile, deletedFile)

Writes need `Authorization: Bearer <token>`. Any other request gets a 404 and is listed in `unknown`, so a test
can assert that the client used nothing this stand-in does not model.
"""
import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Dict, List, Optional, Tuple
from urllib.parse import unquote, urlsplit

import yaml

LFS_SUFFIXES = ('.safetensors', '.bin', '.pt', '.pth', '.tar', '.ckpt', '.h5', '.onnx')


@dataclass
class Repo:
    private: bool = False
    files: Dict[str, bytes] = field(default_factory=dict)
    commits: List[Dict] = field(default_factory=list)  # {'oid', 'summary', 'paths'}

    @property
    def head(self) -> str:
        return self.commits[-1]['oid'] if self.commits else '0' * 40


class HubStandIn:
    """Threaded HTTP server on 127.0.0.1 holding repos in memory."""

    def __init__(self, token: str):
        self.token = token
        self.repos: Dict[str, Repo] = {}
        self.lfs: Dict[str, bytes] = {}
        self.requests: List[Tuple[str, str]] = []
        self.unknown: List[Tuple[str, str]] = []
        self._server: Optional[ThreadingHTTPServer] = None
        self._thread: Optional[threading.Thread] = None
        self.lock = threading.Lock()

    @property
    def endpoint(self) -> str:
        host, port = self._server.server_address[:2]
        return f'http://{host}:{port}'

    def start(self) -> 'HubStandIn':
        hub = self

        class Handler(_Handler):
            standin = hub

        self._server = ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def commit(self, repo_id: str, files: Dict[str, bytes], summary: str = 'seed', deleted=()) -> str:
        """Apply a commit (also used to seed repos); returns its oid."""
        with self.lock:
            repo = self.repos.setdefault(repo_id, Repo())
            for path in deleted:
                repo.files.pop(path, None)
            repo.files.update(files)
            digest = hashlib.sha1(repo.head.encode())
            for path in sorted(repo.files):
                digest.update(path.encode() + b'\0' + hashlib.sha256(repo.files[path]).digest())
            oid = digest.hexdigest()
            repo.commits.append(dict(oid=oid, summary=summary, paths=sorted(files)))
            return oid


class _Handler(BaseHTTPRequestHandler):
    standin: HubStandIn
    protocol_version = 'HTTP/1.1'

    def log_message(self, *args):  # keep pytest output clean
        pass

    # --- plumbing ------------------------------------------------------------------------------------
    def _body(self) -> bytes:
        if self.headers.get('Transfer-Encoding', '').lower() == 'chunked':
            chunks = []
            while True:
                size = int(self.rfile.readline().strip().split(b';')[0], 16)
                if size == 0:
                    self.rfile.readline()
                    return b''.join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get('Content-Length') or 0))

    def _send(self, status: int, payload=None, headers: Optional[Dict[str, str]] = None, raw: bytes = None,
              head: bool = False) -> None:
        body = raw if raw is not None else (json.dumps(payload).encode() if payload is not None else b'')
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if raw is None and payload is not None:
            self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _error(self, status: int, code: Optional[str], message: str, head: bool = False) -> None:
        self._send(status, {'error': message}, {'X-Error-Code': code} if code else None, head=head)

    def _authorized(self) -> bool:
        if self.headers.get('Authorization') == f'Bearer {self.standin.token}':
            return True
        self._error(401, None, 'Invalid credentials in Authorization header')
        return False

    def _repo(self, repo_id: str, head: bool = False) -> Optional[Repo]:
        repo = self.standin.repos.get(repo_id)
        if repo is None:
            self._error(404, 'RepoNotFound', f'Repository not found: {repo_id}', head=head)
        return repo

    def _route(self, method: str) -> None:
        path = unquote(urlsplit(self.path).path)
        self.standin.requests.append((method, path))
        for pattern, name in _ROUTES:
            m = re.fullmatch(pattern, path)
            if m and name.startswith(method.lower() + '_'):
                return getattr(self, name)(*m.groups())
        self.standin.unknown.append((method, path))
        self._error(404, None, f'hub stand-in does not implement {method} {path}', head=method == 'HEAD')

    def do_GET(self):
        self._route('GET')

    def do_HEAD(self):
        self._route('HEAD')

    def do_POST(self):
        self._route('POST')

    def do_PUT(self):
        self._route('PUT')

    # --- endpoints -----------------------------------------------------------------------------------
    def post_create(self):
        body = json.loads(self._body())
        if not self._authorized():
            return
        repo_id = f'{body["organization"]}/{body["name"]}' if body.get('organization') else body['name']
        url = f'{self.standin.endpoint}/{repo_id}'
        if repo_id in self.standin.repos:  # the Hub's 409 carries the url; create_repo(exist_ok=True) reads it
            return self._send(409, {'error': 'You already created this model repo', 'url': url})
        self.standin.repos[repo_id] = Repo(private=body.get('visibility') == 'private')
        self._send(200, {'url': url, 'name': repo_id, 'id': repo_id})

    def _resolve(self, repo_id: str, revision: str, filename: str, head: bool) -> None:
        repo = self._repo(repo_id, head=head)
        if repo is None:
            return
        if revision != 'main':
            return self._error(404, 'RevisionNotFound', f'Invalid rev id: {revision}', head=head)
        data = repo.files.get(filename)
        if data is None:
            return self._error(404, 'EntryNotFound', f'{filename} does not exist on "main"', head=head)
        etag = hashlib.sha256(data).hexdigest()
        self._send(200, headers={'X-Repo-Commit': repo.head, 'ETag': f'"{etag}"'}, raw=data, head=head)

    def head_resolve(self, repo_id, revision, filename):
        self._resolve(repo_id, revision, filename, head=True)

    def get_resolve(self, repo_id, revision, filename):
        self._resolve(repo_id, revision, filename, head=False)

    def get_repo_info(self, repo_id):
        repo = self._repo(repo_id)
        if repo is not None:
            self._send(200, {'id': repo_id, 'sha': repo.head, 'private': repo.private,
                             'siblings': [{'rfilename': p} for p in sorted(repo.files)]})

    def post_validate_yaml(self):
        content = json.loads(self._body())['content']
        m = re.match(r'---\n(.*?)\n---\n', content, flags=re.S)
        try:
            meta = yaml.safe_load(m.group(1)) if m else None
        except yaml.YAMLError as e:
            return self._send(400, {'errors': [{'message': f'Invalid YAML: {e}'}], 'warnings': []})
        if not isinstance(meta, dict):
            return self._send(400, {'errors': [{'message': 'metadata must be a YAML mapping'}], 'warnings': []})
        self._send(200, {'errors': [], 'warnings': []})

    def post_preupload(self, repo_id, revision):
        body = json.loads(self._body())
        if not self._authorized() or self._repo(repo_id) is None:
            return
        files = [dict(path=f['path'], uploadMode='lfs' if f['path'].endswith(LFS_SUFFIXES) else 'regular',
                      shouldIgnore=False, oid=None) for f in body['files']]
        self._send(200, {'files': files, 'commitOid': self.standin.repos[repo_id].head})

    def post_lfs_batch(self, repo_id):
        body = json.loads(self._body())
        if not self._authorized() or self._repo(repo_id) is None:
            return
        objects = []
        for obj in body['objects']:
            entry = dict(oid=obj['oid'], size=obj['size'], authenticated=True)
            if obj['oid'] not in self.standin.lfs:
                href = f'{self.standin.endpoint}/_lfs/{obj["oid"]}'
                entry['actions'] = {'upload': {'href': href}, 'verify': {'href': href + '/verify'}}
            objects.append(entry)
        self._send(200, {'transfer': 'basic', 'objects': objects})

    def put_lfs_object(self, oid):
        data = self._body()
        if hashlib.sha256(data).hexdigest() != oid:
            return self._error(400, None, f'LFS upload does not match its oid {oid}')
        self.standin.lfs[oid] = data
        self._send(200, {})

    def post_lfs_verify(self, oid):
        body = json.loads(self._body())
        if not self._authorized():
            return
        data = self.standin.lfs.get(oid)
        if data is None or len(data) != body['size']:
            return self._error(404, None, f'LFS object {oid} was not uploaded')
        self._send(200, {})

    def post_commit(self, repo_id, revision):
        lines = [json.loads(line) for line in self._body().splitlines() if line.strip()]
        if not self._authorized() or self._repo(repo_id) is None:
            return
        if revision != 'main':
            return self._error(404, 'RevisionNotFound', f'Invalid rev id: {revision}')
        summary, files, deleted = '', {}, []
        for item in lines:
            key, value = item['key'], item['value']
            if key == 'header':
                summary = value['summary']
            elif key == 'file':
                files[value['path']] = base64.b64decode(value['content'])
            elif key == 'lfsFile':
                if value['oid'] not in self.standin.lfs:
                    return self._error(400, None, f'LFS object {value["oid"]} for {value["path"]} was not uploaded')
                files[value['path']] = self.standin.lfs[value['oid']]
            elif key == 'deletedFile':
                deleted.append(value['path'])
            else:
                return self._error(400, None, f'hub stand-in does not implement commit operation {key!r}')
        oid = self.standin.commit(repo_id, files, summary, deleted)
        self._send(200, {'commitUrl': f'{self.standin.endpoint}/{repo_id}/commit/{oid}', 'commitOid': oid,
                         'pullRequestUrl': None})


_REPO = r'([^/]+/[^/]+)'
_ROUTES = (
    (r'/api/repos/create', 'post_create'),
    (r'/api/validate-yaml', 'post_validate_yaml'),
    (rf'/api/models/{_REPO}', 'get_repo_info'),
    (rf'/api/models/{_REPO}/preupload/([^/]+)', 'post_preupload'),
    (rf'/api/models/{_REPO}/commit/([^/]+)', 'post_commit'),
    (rf'/{_REPO}\.git/info/lfs/objects/batch', 'post_lfs_batch'),
    (r'/_lfs/([0-9a-f]{64})', 'put_lfs_object'),
    (r'/_lfs/([0-9a-f]{64})/verify', 'post_lfs_verify'),
    (rf'/{_REPO}/resolve/([^/]+)/(.+)', 'head_resolve'),
    (rf'/{_REPO}/resolve/([^/]+)/(.+)', 'get_resolve'),
)
