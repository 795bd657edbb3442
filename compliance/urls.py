"""URLs of compliance (namespace "compliance"): the review pages and APIs under /compliance/, and
the public verification at /verify/ and /api/v1/verifications."""

from django.urls import path

from . import api, views

app_name = "compliance"
urlpatterns = [
    # Staff review (every one of these is 403 for non-staff: tests/compliance/test_permissions.py).
    path("compliance/review/", views.review_queue, name="review_queue"),
    path("compliance/review/cases/<int:case_id>/", views.case_detail, name="case_detail"),
    path("compliance/review/cases/<int:case_id>/decide/", views.case_decide_view, name="case_decide"),
    path("compliance/review/flags/<int:flag_id>/open-case/", views.flag_open_case, name="flag_open_case"),
    path("compliance/review/flags/<int:flag_id>/dismiss/", views.flag_dismiss_view, name="flag_dismiss"),
    path("compliance/review/exports/cases.csv", views.cases_export, name="cases_export"),
    path("compliance/review/exports/audit.csv", views.audit_export, name="audit_export"),
    path("compliance/api/review/", api.ReviewQueueApi.as_view(), name="api_review_queue"),
    path("compliance/api/review/cases/<int:case_id>/", api.CaseDetailApi.as_view(), name="api_case_detail"),
    path("compliance/api/review/cases/<int:case_id>/decisions/", api.CaseDecisionCreateApi.as_view(), name="api_case_decide"),
    path("compliance/api/review/flags/<int:flag_id>/case/", api.FlagCaseOpenApi.as_view(), name="api_flag_open_case"),
    path("compliance/api/review/flags/<int:flag_id>/dismissal/", api.FlagDismissApi.as_view(), name="api_flag_dismiss"),
    # Public: report a text found somewhere.
    path("compliance/report/", views.report_form, name="report"),
    path("compliance/api/reports/", api.ReportCreateApi.as_view(), name="api_report_create"),
    # Cases about a customer's licences or a trainer's models.
    path("compliance/cases/", views.my_cases, name="my_cases"),
    path("compliance/cases/<int:case_id>/", views.my_case, name="my_case"),
    path("compliance/cases/<int:case_id>/answer/", views.my_case_answer, name="my_case_answer"),
    path("compliance/api/cases/<int:case_id>/answer/", api.CaseAnswerApi.as_view(), name="api_case_answer"),
    # Public: where did a text come from?
    path("verify/", views.verify_page, name="verify"),
    path("api/v1/verifications", api.VerificationCreateApi.as_view(), name="api_verifications"),
]
