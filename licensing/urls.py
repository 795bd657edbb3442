from django.urls import path

from . import api, views

app_name = "licensing"
urlpatterns = [
    # Staff review (every one of these is 403 for non-staff: tests/compliance/test_permissions.py).
    path("review/", views.review_queue, name="review_queue"),
    path("review/cases/<int:case_id>/", views.case_detail, name="case_detail"),
    path("review/cases/<int:case_id>/decide/", views.case_decide_view, name="case_decide"),
    path("review/flags/<int:flag_id>/open-case/", views.flag_open_case, name="flag_open_case"),
    path("review/flags/<int:flag_id>/dismiss/", views.flag_dismiss_view, name="flag_dismiss"),
    path("review/exports/cases.csv", views.cases_export, name="cases_export"),
    path("review/exports/audit.csv", views.audit_export, name="audit_export"),
    path("api/review/", api.ReviewQueueApi.as_view(), name="api_review_queue"),
    path("api/review/cases/<int:case_id>/", api.CaseDetailApi.as_view(), name="api_case_detail"),
    path("api/review/cases/<int:case_id>/decisions/", api.CaseDecisionCreateApi.as_view(), name="api_case_decide"),
    path("api/review/flags/<int:flag_id>/case/", api.FlagCaseOpenApi.as_view(), name="api_flag_open_case"),
    path("api/review/flags/<int:flag_id>/dismissal/", api.FlagDismissApi.as_view(), name="api_flag_dismiss"),
    # Public: report a text found somewhere.
    path("report/", views.report_form, name="report"),
    path("api/reports/", api.ReportCreateApi.as_view(), name="api_report_create"),
    # Cases about a customer's licences or a trainer's models.
    path("cases/", views.my_cases, name="my_cases"),
    path("cases/<int:case_id>/", views.my_case, name="my_case"),
    path("cases/<int:case_id>/answer/", views.my_case_answer, name="my_case_answer"),
    path("api/cases/<int:case_id>/answer/", api.CaseAnswerApi.as_view(), name="api_case_answer"),
    # Stable per-version URLs of licence terms (the id is the terms' SHA-256).
    path("terms/<str:sha256>.json", views.terms_json, name="terms_json"),
    path("terms/<str:sha256>/", views.terms_text, name="terms_text"),
]
