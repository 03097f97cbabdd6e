from mesh_core.run.lineage import client, default_path


def test_the_client_follows_the_settings_of_the_moment(tmp_path, monkeypatch):
    kinds = [client(tmp_path).transport.kind]
    monkeypatch.setenv("OPENLINEAGE_DISABLED", "true")
    kinds.append(client(tmp_path).transport.kind)
    monkeypatch.delenv("OPENLINEAGE_DISABLED")
    monkeypatch.setenv("OPENLINEAGE_URL", "http://127.0.0.1:9")
    kinds.append(client(tmp_path).transport.kind)
    monkeypatch.delenv("OPENLINEAGE_URL")
    kinds.append(client(tmp_path).transport.kind)
    assert kinds == ["file", "noop", "http", "file"]
    assert client(tmp_path).transport.config.log_file_path == str(default_path(tmp_path))
