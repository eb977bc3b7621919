"""Test helper: a real Alertmanager, a Prometheus that alerts to it, and a webhook receiver
(the classes ship in the package for the demo: controller/report/alerting.py)."""
from controller.report.alerting import (CONFIG, RULES, AlertingPrometheus, AlertmanagerNotFound, AlertmanagerServer,
                                        WebhookReceiver, alertmanager_config, start_alerting)

__all__ = ["CONFIG", "RULES", "AlertingPrometheus", "AlertmanagerNotFound", "AlertmanagerServer", "WebhookReceiver",
           "alertmanager_config", "start_alerting"]
